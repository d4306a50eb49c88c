package web

import (
	"encoding/xml"

	"github.com/jodmai/jodmai/internal/dnsrecords"
)

// ClientConfigXML is Thunderbird's autoconfig file, format version 1.1
// (https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat,
// and draft-ietf-mailmaint-autoconfig).
type ClientConfigXML struct {
	XMLName  xml.Name      `xml:"clientConfig"`
	Version  string        `xml:"version,attr"`
	Provider EmailProvider `xml:"emailProvider"`
}

// EmailProvider is the one provider of a ClientConfigXML.
type EmailProvider struct {
	ID               string         `xml:"id,attr"`
	Domain           []string       `xml:"domain"`
	DisplayName      string         `xml:"displayName"`
	DisplayShortName string         `xml:"displayShortName"`
	Incoming         []ServerConfig `xml:"incomingServer"`
	Outgoing         []ServerConfig `xml:"outgoingServer"`
}

// ServerConfig is an incomingServer or outgoingServer.
type ServerConfig struct {
	Type           string `xml:"type,attr"` // imap, pop3; smtp
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`     // SSL, STARTTLS or plain
	Username       string `xml:"username"`       // %EMAILADDRESS%: the address typed
	Authentication string `xml:"authentication"` // password-cleartext: PLAIN/LOGIN within TLS
}

// ClientConfig builds the autoconfig file for domain: each enabled
// service, in dnsrecords.Services' order (implicit TLS first).
func ClientConfig(hostname, domain string, services []dnsrecords.Service) ClientConfigXML {
	p := EmailProvider{ID: domain, Domain: []string{domain}, DisplayName: domain + " (" + hostname + ")", DisplayShortName: domain}
	for _, s := range services {
		if s.Port == 0 {
			continue
		}
		socket := "STARTTLS"
		if s.ImplicitTLS {
			socket = "SSL"
		}
		sc := ServerConfig{Type: s.Proto, Hostname: hostname, Port: s.Port, SocketType: socket, Username: "%EMAILADDRESS%", Authentication: "password-cleartext"}
		if s.Proto == "smtp" {
			p.Outgoing = append(p.Outgoing, sc)
		} else {
			p.Incoming = append(p.Incoming, sc)
		}
	}
	return ClientConfigXML{Version: "1.1", Provider: p}
}

// Autodiscover POX namespaces ("Autodiscover for Exchange", [MS-OXDSCLI]).
const (
	autodiscoverResponseNS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	outlookResponseNS      = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)

// autodiscoverRequest is the POX request Outlook POSTs.
type autodiscoverRequest struct {
	XMLName xml.Name `xml:"Autodiscover"`
	Request struct {
		EMailAddress             string `xml:"EMailAddress"`
		AcceptableResponseSchema string `xml:"AcceptableResponseSchema"`
	} `xml:"Request"`
}

// AutodiscoverXML is the POX response.
type AutodiscoverXML struct {
	XMLName  xml.Name             `xml:"Autodiscover"`
	XMLNS    string               `xml:"xmlns,attr"`
	Response AutodiscoverResponse `xml:"Response"`
}

// AutodiscoverResponse holds the account settings.
type AutodiscoverResponse struct {
	XMLNS   string `xml:"xmlns,attr"`
	Account struct {
		AccountType string                 `xml:"AccountType"` // email
		Action      string                 `xml:"Action"`      // settings
		Protocol    []AutodiscoverProtocol `xml:"Protocol"`
	} `xml:"Account"`
}

// AutodiscoverProtocol is one protocol's settings.
type AutodiscoverProtocol struct {
	Type           string `xml:"Type"` // IMAP, POP3, SMTP
	Server         string `xml:"Server"`
	Port           int    `xml:"Port"`
	DomainRequired string `xml:"DomainRequired"` // off
	LoginName      string `xml:"LoginName"`
	SPA            string `xml:"SPA"`          // off: no NTLM
	SSL            string `xml:"SSL"`          // on
	Encryption     string `xml:"Encryption"`   // SSL (implicit) or TLS (STARTTLS)
	AuthRequired   string `xml:"AuthRequired"` // on
}

// Autodiscover builds the POX response for address: per protocol the
// first enabled service (implicit TLS before STARTTLS), since Outlook
// takes one setting per type.
func Autodiscover(hostname, address string, services []dnsrecords.Service) AutodiscoverXML {
	resp := AutodiscoverXML{XMLNS: autodiscoverResponseNS}
	resp.Response.XMLNS = outlookResponseNS
	resp.Response.Account.AccountType = "email"
	resp.Response.Account.Action = "settings"
	seen := map[string]bool{}
	for _, s := range services {
		if s.Port == 0 || seen[s.Proto] {
			continue
		}
		seen[s.Proto] = true
		enc := "TLS"
		if s.ImplicitTLS {
			enc = "SSL"
		}
		typ := map[string]string{"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}[s.Proto]
		resp.Response.Account.Protocol = append(resp.Response.Account.Protocol, AutodiscoverProtocol{
			Type: typ, Server: hostname, Port: s.Port, DomainRequired: "off", LoginName: address,
			SPA: "off", SSL: "on", Encryption: enc, AuthRequired: "on",
		})
	}
	return resp
}
