package lease

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"time"
)

// DefaultIssuer is iss when none is configured.
const DefaultIssuer = "urn:license-service"

// Settings are a node's lease settings, the variables SIGNING_KEY_FILE, SIGNING_KEY,
// JWKS_FILE, LEASE_ISSUER and LEASE_DURATION under its prefix (WRITER_, EDGE_).
type Settings struct {
	KeyFile, Key, JWKSFile, Issuer string
	Duration                       time.Duration
}

// Open builds a node's signer from its settings: the configured key, or a new
// ephemeral one; its own public key plus the JWK Set file. Warnings are for the node's
// log (an ephemeral key, a key file others may read); they hold no key material, and
// neither do errors, which name the variable (prefix + name) at fault.
func Open(prefix string, s Settings) (signer *Signer, warnings []string, err error) {
	priv, err := LoadKey(s.KeyFile, s.Key)
	switch {
	case err != nil && s.KeyFile != "" && s.Key != "":
		return nil, nil, fmt.Errorf("%sSIGNING_KEY_FILE and %sSIGNING_KEY: %w", prefix, prefix, err)
	case err != nil && s.KeyFile != "":
		return nil, nil, fmt.Errorf("%sSIGNING_KEY_FILE: %w", prefix, err)
	case err != nil:
		return nil, nil, fmt.Errorf("%sSIGNING_KEY: %w", prefix, err)
	case priv == nil:
		if priv, err = GenerateKey(); err != nil {
			return nil, nil, err
		}
		warnings = append(warnings, fmt.Sprintf("no %sSIGNING_KEY_FILE or %sSIGNING_KEY: signing status leases with an "+
			"ephemeral key; leases signed now will not verify after a restart or against another node's key set. "+
			"Set %sSIGNING_KEY_FILE to a PKCS#8 PEM Ed25519 key (openssl genpkey -algorithm ed25519) and list its public "+
			"key in every node's %sJWKS_FILE", prefix, prefix, prefix, prefix))
	case s.KeyFile != "" && LoosePermissions(s.KeyFile):
		warnings = append(warnings, fmt.Sprintf("%sSIGNING_KEY_FILE %s is readable by every user or writable by its "+
			"group: make it mode 0600 (0440 through a Kubernetes fsGroup)", prefix, s.KeyFile))
	}
	extra, err := ReadJWKS(s.JWKSFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%sJWKS_FILE: %w", prefix, err)
	}
	if s.Issuer == "" {
		s.Issuer = DefaultIssuer
	}
	signer, err = NewSigner(priv, s.Issuer, s.Duration, extra)
	if err != nil {
		return nil, nil, fmt.Errorf("%sJWKS_FILE: %w", prefix, err)
	}
	if s.JWKSFile != "" {
		if _, ok := extra.Find(signer.Kid()); !ok && !listed(extra, priv) {
			warnings = append(warnings, fmt.Sprintf("%sJWKS_FILE does not list this node's own public key (kid %s): "+
				"it is published here, but nodes serving that file elsewhere will not verify this node's leases",
				prefix, signer.Kid()))
		}
	}
	return signer, warnings, nil
}

// listed: the set holds priv's public key under some kid.
func listed(set JWKS, priv ed25519.PrivateKey) bool {
	x := b64(priv.Public().(ed25519.PublicKey))
	for _, k := range set.Keys {
		if k.X == x {
			return true
		}
	}
	return false
}

// OpenLogged is Open for a binary's start: each warning is logged, then the key in use
// (its kid, never the key), how many keys the set publishes and the lease duration.
func OpenLogged(prefix string, s Settings, log *slog.Logger) (*Signer, error) {
	signer, warnings, err := Open(prefix, s)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	log.Info("status leases", "kid", signer.Kid(), "published_keys", len(signer.Keys().Keys), "lease", signer.Lease())
	return signer, nil
}
