package message

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"testing"
)

// benchMessage builds a realistic multipart/mixed message of about size bytes:
// a text/alternative body and base64 attachments.
func benchMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString(crlf(`Return-Path: <sender@example.org>
Received: from mail.example.org (mail.example.org [192.0.2.1])
	by mx.example.com with ESMTPS id 123 for <rcpt@example.com>;
	Mon, 2 Jan 2006 15:04:05 -0700
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=s1;
	h=from:to:subject:date; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;
	b=dzdVyOfAKCdLXdJOc9G2q8LoXSlEniSbav+yuU4zGeeruD00lszZVoG4ZHRNiYzR
From: "Sender, Some" <sender@example.org>
To: Rcpt <rcpt@example.com>, other@example.com
Cc: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.de>
Subject: =?UTF-8?B?UXVhcnRlcmx5IHJlcG9ydA==?=
Date: Mon, 2 Jan 2006 15:04:05 -0700
Message-ID: <bench@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="----=_Part_0_1234.5678"

This is a multi-part message in MIME format.
------=_Part_0_1234.5678
Content-Type: multipart/alternative; boundary="----=_Part_1_1234.5678"

------=_Part_1_1234.5678
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hello,

please find the report attached.
------=_Part_1_1234.5678
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<html><body><p>Hello,</p><p>please find the report attached.</p></body></html>
------=_Part_1_1234.5678--
`))
	payload := make([]byte, 57*1000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	for n := 0; b.Len() < size; n++ {
		fmt.Fprintf(&b, crlf("------=_Part_0_1234.5678\nContent-Type: application/pdf; name=\"r%d.pdf\"\n"+
			"Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"r%d.pdf\"\n\n"), n, n)
		enc := base64.StdEncoding.EncodeToString(payload)
		for i := 0; i < len(enc) && b.Len() < size; i += 76 {
			b.WriteString(enc[i:min(i+76, len(enc))])
			b.WriteString("\r\n")
		}
	}
	b.WriteString("------=_Part_0_1234.5678--\r\n")
	return b.Bytes()
}

func BenchmarkParse(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		msg := benchMessage(size)
		b.Run(fmt.Sprintf("%dKiB", len(msg)>>10), func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(bytes.NewReader(msg)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestBenchMessage(t *testing.T) {
	for _, size := range []int{4 << 10, 1 << 20} {
		msg := benchMessage(size)
		root, err := Parse(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, msg, root)
		if len(root.Parts) < 2 || root.Parts[0].MediaSubtype != "alternative" || root.Parts[1].MediaSubtype != "pdf" ||
			root.Parts[1].Param("name") != "r0.pdf" {
			t.Errorf("unexpected structure for %d bytes: %d parts", len(msg), len(root.Parts))
		}
	}
}

func BenchmarkCRLFWriter(b *testing.B) {
	in := bytes.ReplaceAll(benchMessage(1<<20), []byte("\r\n"), []byte("\n"))
	b.SetBytes(int64(len(in)))
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		NewCRLFWriter(&out).Write(in)
	}
}
