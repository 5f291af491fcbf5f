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
	claimedAt, err := s.claim(ctx, p.BrandID, idem)
	if err != nil {
		return zero, err
	}
	var out T
	err = s.store.Tx(ctx, scope, func(tx Tx) error {
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
		// fenced by claimedAt: if a retry took the claim over meanwhile, this
		// transaction rolls back instead of applying the request a second time
		return tx.CompleteIdempotency(ctx, p.BrandID, idem.Key, claimedAt, idem.Status, body)
	})
	if err == nil {
		return out, nil
	}
	// the request may have been cancelled (client gone): finish the bookkeeping anyway
	bg := context.WithoutCancel(ctx)
	var perr *problem.Error
	if errors.As(err, &perr) && perr.Kind != problem.Internal && perr.Kind != problem.IdempotencyInProgress {
		// A domain error is the request's answer: store it so retries get the same.
		status, body := problem.Marshal(perr, m.RequestID)
		cerr := s.store.Tx(bg, scope, func(tx Tx) error {
			return tx.CompleteIdempotency(bg, p.BrandID, idem.Key, claimedAt, status, body)
		})
		if cerr != nil {
			s.log.Error("store idempotent error response", "err", cerr)
		}
		return zero, err
	}
	rerr := s.store.Tx(bg, scope, func(tx Tx) error {
		return tx.ReleaseIdempotency(bg, p.BrandID, idem.Key, claimedAt)
	})
	if rerr != nil {
		s.log.Error("release idempotency key", "err", rerr)
	}
	return zero, err
}

// claim takes the idempotency key for this request and returns the claim's lock time,
// which fences the later completion. A record older than the retention is expired and
// claimed afresh.
func (s *Service) claim(ctx context.Context, brandID string, idem *Idempotency) (time.Time, error) {
	// Postgres keeps microseconds: the fence must compare equal after a round trip
	now := s.Now().Truncate(time.Microsecond)
	inProgress := problem.New(problem.IdempotencyInProgress, "a request with this Idempotency-Key is still being processed; retry later")
	err := s.store.Tx(ctx, BrandScope(brandID), func(tx Tx) error {
		ex, ok, err := tx.ClaimIdempotency(ctx, IdemRow{BrandID: brandID, Key: idem.Key, Fingerprint: idem.Fingerprint,
			State: "running", CreatedAt: now, LockedAt: now}, now.Add(-IdempotencyRetention))
		if problem.Is(err, problem.NotFound) {
			return inProgress // the holder released it between our insert and read: retry
		}
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
			return inProgress
		}
		return nil
	})
	return now, err
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
