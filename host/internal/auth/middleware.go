package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	"github.com/execmod/execmod/internal/wire"
)

// Config says which realms require authentication and how a request may
// prove who sent it.
type Config struct {
	Readonly  bool // --authenticate_http_readonly: mesos-agent-readonly routes need a principal
	Readwrite bool // --authenticate_http_readwrite: mesos-agent-readwrite routes need a principal
	// Credentials are the principals that may authenticate with HTTP basic
	// credentials.
	Credentials Credentials
	// ClientCertificates, when true, makes a verified TLS client
	// certificate name the principal (its subject common name, or its
	// first URI SAN if it has none). Set it with --ssl_ca_file.
	ClientCertificates bool
	// OnFailure, if set, hears of every request refused for want of
	// valid credentials, with the reason (never a secret nor the user
	// name the client sent).
	OnFailure func(r *http.Request, realm wire.Realm, reason string)
}

// Authenticator enforces a Config on HTTP handlers.
type Authenticator struct {
	cfg Config
}

// New returns an Authenticator for cfg.
func New(cfg Config) *Authenticator { return &Authenticator{cfg: cfg} }

// Required reports whether routes of realm need a principal.
func (a *Authenticator) Required(realm wire.Realm) bool {
	switch realm {
	case wire.RealmReadOnly:
		return a.cfg.Readonly
	case wire.RealmReadWrite:
		return a.cfg.Readwrite
	case wire.RealmNone:
		return false
	}
	return true // an unknown realm is closed
}

type principalKey struct{}

// Principal is the authenticated principal of r, or "".
func Principal(r *http.Request) string {
	p, _ := r.Context().Value(principalKey{}).(string)
	return p
}

// WithPrincipal returns ctx carrying principal p.
func WithPrincipal(ctx context.Context, p string) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// Wrap returns h behind the authentication of realm.
//
// A route whose realm requires authentication answers 401, with a
// WWW-Authenticate challenge for its realm and a JSON {"error": ...} body,
// unless the request carries valid Basic credentials or, without an
// Authorization header (or when the host has no credentials, which makes
// that header none of its business), a verified client certificate. Other
// routes are open: valid credentials still name the request's principal
// (so modules and audit logs see who called), invalid ones are ignored.
//
// The Basic credentials are for the host: when it has credentials, the
// Authorization header of the Basic scheme is removed before h sees the
// request, so modules never receive a secret.
func (a *Authenticator) Wrap(realm wire.Realm, h http.Handler) http.Handler {
	required := a.Required(realm)
	challenge := fmt.Sprintf("Basic realm=%q", realm.String())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		principal, err := a.authenticate(r)
		if err != nil && !required {
			// Invalid credentials on an open route are ignored, as
			// if absent.
			principal = a.certificatePrincipal(r)
		}
		if err != nil && required {
			if a.cfg.OnFailure != nil {
				a.cfg.OnFailure(r, realm, err.Error())
			}
			w.Header().Set("WWW-Authenticate", challenge)
			wire.WriteError(w, http.StatusUnauthorized, fmt.Sprintf("authentication required for realm %s: %s", realm, err))
			return
		}
		ctx := r.Context()
		if principal != "" {
			ctx = WithPrincipal(ctx, principal)
		}
		r2 := r.WithContext(ctx)
		if a.cfg.Credentials.Len() > 0 && r.Header.Get("Authorization") != "" {
			if _, _, err := ParseBasic(r.Header.Get("Authorization")); !errors.Is(err, ErrNotBasic) {
				r2.Header = r.Header.Clone()
				r2.Header.Del("Authorization")
			}
		}
		h.ServeHTTP(w, r2)
	})
}

// Reasons a request is not authenticated, as the client reads them.
var (
	errInvalid = errors.New("invalid credentials")
	errTooMany = errors.New("more than one Authorization header")
	errMissing = errors.New("no credentials")
)

// authenticate returns the principal r proves, or why it proves none.
// Basic credentials are checked only when the host has some; without,
// the Authorization header is not the host's business.
func (a *Authenticator) authenticate(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	if a.cfg.Credentials.Len() == 0 || len(values) == 0 {
		if p := a.certificatePrincipal(r); p != "" {
			return p, nil
		}
		return "", errMissing
	}
	if len(values) > 1 {
		return "", errTooMany
	}
	user, secret, err := ParseBasic(values[0])
	if err != nil {
		return "", err
	}
	p, ok := a.cfg.Credentials.Verify(user, secret)
	if !ok {
		return "", errInvalid
	}
	return p, nil
}

// certificatePrincipal is the principal of r's verified client
// certificate, or "".
func (a *Authenticator) certificatePrincipal(r *http.Request) string {
	if !a.cfg.ClientCertificates || r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return ""
	}
	p := CertificatePrincipal(r.TLS.VerifiedChains[0][0])
	if CheckPrincipal(p) != nil {
		return ""
	}
	return p
}

// CertificatePrincipal is the principal a client certificate names: its
// subject common name or, without one, its first URI SAN.
func CertificatePrincipal(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	if len(c.URIs) > 0 {
		return c.URIs[0].String()
	}
	return ""
}
