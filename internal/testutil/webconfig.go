package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// WebConfig is an exporter-toolkit web config file made for a test: a
// self-signed certificate for 127.0.0.1, ::1 and localhost, and
// basic-auth users with bcrypt-hashed passwords.
type WebConfig struct {
	Path  string            // the web config file (--web.config.file)
	Pool  *x509.CertPool    // trusts the server's certificate
	Users map[string]string // user -> password in clear
	// CertPath is the server certificate in PEM, for clients (such as a
	// browser) that are told to trust it.
	CertPath string
}

// NewWebConfig writes a web config file with TLS and the given users
// (user -> password) into a directory of the test. With tls false the
// file has only the users (plain HTTP with basic auth).
func NewWebConfig(tb testing.TB, users map[string]string, withTLS bool) *WebConfig {
	tb.Helper()
	dir := tb.TempDir()
	wc := &WebConfig{Path: filepath.Join(dir, "web.yml"), Users: users, Pool: x509.NewCertPool()}
	var b strings.Builder
	if withTLS {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(time.Now().UnixNano()),
			Subject:               pkix.Name{CommonName: "kstat test"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
			IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			DNSNames:              []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			tb.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			tb.Fatal(err)
		}
		wc.Pool.AddCert(cert)
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			tb.Fatal(err)
		}
		wc.CertPath = filepath.Join(dir, "server.crt")
		writeFile(tb, wc.CertPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
		writeFile(tb, filepath.Join(dir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
		b.WriteString("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
	}
	if len(users) > 0 {
		b.WriteString("basic_auth_users:\n")
		names := make([]string, 0, len(users))
		for u := range users {
			names = append(names, u)
		}
		sort.Strings(names)
		for _, u := range names {
			// The lowest cost keeps the test fast; the toolkit accepts it.
			h, err := bcrypt.GenerateFromPassword([]byte(users[u]), bcrypt.MinCost)
			if err != nil {
				tb.Fatal(err)
			}
			fmt.Fprintf(&b, "  %s: %s\n", u, h)
		}
	}
	writeFile(tb, wc.Path, []byte(b.String()), 0o600)
	return wc
}

// Client returns an HTTP client that trusts the config's certificate and
// sends user's basic auth with every request ("" sends none).
func (wc *WebConfig) Client(user string) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: wc.Pool}}
	if user == "" {
		return &http.Client{Transport: tr}
	}
	return &http.Client{Transport: &basicAuth{user: user, pass: wc.Users[user], next: tr}}
}

type basicAuth struct {
	user, pass string
	next       http.RoundTripper
}

func (b *basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.pass)
	return b.next.RoundTrip(r)
}

func writeFile(tb testing.TB, path string, b []byte, mode os.FileMode) {
	tb.Helper()
	if err := os.WriteFile(path, b, mode); err != nil {
		tb.Fatal(err)
	}
}

// CloseIdleConnections closes the idle connections of the transport below.
func (b *basicAuth) CloseIdleConnections() {
	if c, ok := b.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
