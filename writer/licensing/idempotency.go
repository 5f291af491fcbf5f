package licensing

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/licensing/licensing/shared/problem"
)

// Idempotency describes a brand POST that carries an Idempotency-Key, in the style of
// Stripe's: the first request's response is stored with the effect, in the same
// transaction, and replayed to any retry with the same key and the same request
// fingerprint for 24 hours.
type Idempotency struct {
	Key         string
	Fingerprint []byte // hash of method, route and body
	// Status is the HTTP status a success of this request answers with.
	Status int
}

// Replay is returned (as an error) when a stored response must be replayed verbatim.
type Replay struct {
	Status int
	Body   []byte
}

func (r *Replay) Error() string { return "idempotent replay" }

// IdempotencyRetention is how long idempotency records are kept.
const IdempotencyRetention = 24 * time.Hour

// IdempotencyLockTimeout is how long a running record blocks duplicates before it is
// considered abandoned (its request crashed) and may be taken over.
const IdempotencyLockTimeout = 60 * time.Second

// idempotent runs fn in one transaction of the principal's brand. With an idempotency key
// in m, the key is claimed first (in its own committed transaction, so a duplicate that
// arrives while fn runs sees it), the success response is stored in fn's transaction, and
// a domain error's response is stored after the rollback; an internal error releases the
// claim so that a retry may run again.
func idempotent[T any](s *Service, ctx context.Context, m Meta, p Principal, fn func(Tx) (T, error)) (T, error) {
	var zero T
	scope := BrandScope(p.BrandID)
	idem := m.Idempotency
	if idem == nil {
		var out T
		err := s.store.Tx(ctx, scope, func(tx Tx) error {
			var err error
			out, err = fn(tx)
			return err
		})
		return out, err
	}
	if err := s.claim(ctx, p.BrandID, idem); err != nil {
		return zero, err
	}
	var out T
	err := s.store.Tx(ctx, scope, func(tx Tx) error {
		var err error
		if out, err = fn(tx); err != nil {
			return err
		}
		body, err := json.Marshal(out)
		if err != nil {
			return err
		}
		if idem.Status == 204 {
			body = nil
		}
		return tx.CompleteIdempotency(ctx, p.BrandID, idem.Key, idem.Status, body)
	})
	if err == nil {
		return out, nil
	}
	var perr *problem.Error
	if errors.As(err, &perr) && perr.Kind != problem.Internal {
		// A domain error is the request's answer: store it so retries get the same.
		status, body := problem.Marshal(perr, m.RequestID)
		cerr := s.store.Tx(context.WithoutCancel(ctx), scope, func(tx Tx) error {
			return tx.CompleteIdempotency(ctx, p.BrandID, idem.Key, status, body)
		})
		if cerr != nil {
			s.log.Error("store idempotent error response", "err", cerr)
		}
		return zero, err
	}
	rerr := s.store.Tx(context.WithoutCancel(ctx), scope, func(tx Tx) error {
		return tx.ReleaseIdempotency(ctx, p.BrandID, idem.Key)
	})
	if rerr != nil {
		s.log.Error("release idempotency key", "err", rerr)
	}
	return zero, err
}

func (s *Service) claim(ctx context.Context, brandID string, idem *Idempotency) error {
	now := s.Now()
	return s.store.Tx(ctx, BrandScope(brandID), func(tx Tx) error {
		ex, ok, err := tx.ClaimIdempotency(ctx, IdemRow{BrandID: brandID, Key: idem.Key, Fingerprint: idem.Fingerprint,
			State: "running", CreatedAt: now, LockedAt: now})
		if err != nil || ok {
			return err
		}
		if string(ex.Fingerprint) != string(idem.Fingerprint) {
			return problem.New(problem.IdempotencyKeyReused, "this Idempotency-Key was used with a different request")
		}
		if ex.State == "done" {
			return &Replay{Status: ex.ResponseStatus, Body: ex.ResponseBody}
		}
		taken, err := tx.TakeOverIdempotency(ctx, brandID, idem.Key, idem.Fingerprint, now.Add(-IdempotencyLockTimeout), now)
		if err != nil {
			return err
		}
		if !taken {
			return problem.New(problem.IdempotencyInProgress, "a request with this Idempotency-Key is still being processed; retry later")
		}
		return nil
	})
}

// CleanupIdempotency deletes records older than the retention; it returns how many.
func (s *Service) CleanupIdempotency(ctx context.Context) (int64, error) {
	var n int64
	err := s.store.Tx(ctx, ScopeAll, func(tx Tx) error {
		var err error
		n, err = tx.DeleteIdempotencyBefore(ctx, s.Now().Add(-IdempotencyRetention))
		return err
	})
	return n, err
}
