package queue

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jodmai/jodmai/internal/blob"
)

// BenchmarkAdd measures Add of 4 KiB memory bodies (smtpd's), each
// durable, from GOMAXPROCS concurrent callers (parallelism=1) and from 8
// times as many (more of them share each commit).
func BenchmarkAdd(b *testing.B) {
	msg := "Return-Path: <a@example.org>\r\nFrom: a@example.org\r\nSubject: bench\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef012345678901234\r\n", 64)
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("parallelism=%d", par), func(b *testing.B) {
			q, err := Open(filepath.Join(b.TempDir(), "queue"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			tmp := b.TempDir()
			var n atomic.Int64
			b.SetParallelism(par)
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w := blob.NewSpool(tmp, 1<<20, nil)
					io.WriteString(w, msg)
					body, err := w.Finish()
					if err != nil {
						b.Error(err)
						return
					}
					rcpt := fmt.Sprintf("r%d@remote.example", n.Add(1))
					if _, err := q.Add(ctx, body, Envelope{From: "a@example.org", Recipients: rcpts(rcpt)}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
