package licensing

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/licensing/licensing/shared/problem"
)

// IdempotencyTx is what idempotency records need of a transaction.
type IdempotencyTx interface {
	// ClaimIdempotency inserts a running record, or replaces one created before
	// expiredBefore; ok is false when a live one exists, in which case existing holds it
	// (not_found when it vanished between the insert and the read).
	ClaimIdempotency(ctx context.Context, r IdemRow, expiredBefore time.Time) (existing IdemRow, ok bool, err error)
	// TakeOverIdempotency re-claims a running record whose lock is older than staleBefore
	// (its holder crashed); ok is false when it is not stale.
	TakeOverIdempotency(ctx context.Context, brandID, key string, fingerprint []byte, staleBefore, now time.Time) (bool, error)
	// CompleteIdempotency stores the outcome of the claim made at claimedAt; it returns
	// idempotency_in_progress when that claim is no longer held (taken over).
	CompleteIdempotency(ctx context.Context, brandID, key string, claimedAt time.Time, o StoredOutcome) error
	// ReleaseIdempotency deletes the running claim made at claimedAt.
	ReleaseIdempotency(ctx context.Context, brandID, key string, claimedAt time.Time) error
	// DeleteIdempotencyBefore deletes records created before before; it returns how many.
	DeleteIdempotencyBefore(ctx context.Context, before time.Time) (int64, error)
}

// Idempotency describes a brand POST that carries an Idempotency-Key, in the style of
// Stripe's: the first request's outcome is stored with the effect, in the same
// transaction, and replayed to any retry with the same key and the same request
// fingerprint for 24 hours.
type Idempotency struct {
	Key         string
	Fingerprint []byte // hash of method, route and body
}

// Idempotency record states.
const (
	IdemRunning = "running"
	IdemDone    = "done"
)

// IdemRow is a stored idempotency record.
type IdemRow struct {
	BrandID, Key string
	Fingerprint  []byte
	State        string // IdemRunning or IdemDone
	Outcome      StoredOutcome
	CreatedAt    time.Time
	LockedAt     time.Time
}

// StoredOutcome is what a finished request answered, without any transport's rendering:
// Kind is OutcomeOK and Body the resource's JSON, or Kind is the problem kind and Body the
// JSON of its detail.
type StoredOutcome struct {
	Kind string
	Body []byte
}

// OutcomeOK marks a stored success.
const OutcomeOK = "ok"

type storedProblem struct {
	Detail string         `json:"detail"`
	Reason problem.Reason `json:"reason,omitempty"`
}

func successOutcome(v any) (StoredOutcome, error) {
	b, err := json.Marshal(v)
	return StoredOutcome{Kind: OutcomeOK, Body: b}, err
}

func problemOutcome(e *problem.Error) StoredOutcome {
	b, _ := json.Marshal(storedProblem{Detail: e.Detail, Reason: e.Reason})
	return StoredOutcome{Kind: string(e.Kind), Body: b}
}

// replay turns a stored outcome back into what the operation returns.
func (o StoredOutcome) replay() *Replay {
	if o.Kind == OutcomeOK {
		return &Replay{Body: o.Body}
	}
	var sp storedProblem
	_ = json.Unmarshal(o.Body, &sp)
	return &Replay{Err: &problem.Error{Kind: problem.Kind(o.Kind), Detail: sp.Detail, Reason: sp.Reason}}
}

// Replay is returned (as an error) when a stored outcome must be replayed: Body is the
// stored success's resource JSON, or Err the stored failure. The transport renders it as
// it renders a fresh answer, marked as a replay.
type Replay struct {
	Body []byte
	Err  *problem.Error
}

func (r *Replay) Error() string { return "idempotent replay" }

// IdempotencyRetention is how long idempotency records are kept.
const IdempotencyRetention = 24 * time.Hour

// IdempotencyLockTimeout is how long a running record blocks duplicates before it is
// considered abandoned (its request crashed) and may be taken over.
const IdempotencyLockTimeout = 60 * time.Second

// idempotent runs fn in one transaction of the principal's brand. With an idempotency key
// in m, the key is claimed first (in its own committed transaction, so a duplicate that
// arrives while fn runs sees it), the success outcome is stored in fn's transaction, and a
// domain error's outcome is stored after the rollback; an internal error releases the
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
		o, err := successOutcome(out)
		if err != nil {
			return err
		}
		// fenced by claimedAt: if a retry took the claim over meanwhile, this
		// transaction rolls back instead of applying the request a second time
		return tx.CompleteIdempotency(ctx, p.BrandID, idem.Key, claimedAt, o)
	})
	if err == nil {
		return out, nil
	}
	// the request may have been cancelled (client gone): finish the bookkeeping anyway
	bg := context.WithoutCancel(ctx)
	var perr *problem.Error
	if errors.As(err, &perr) && perr.Kind != problem.Internal && perr.Kind != problem.IdempotencyInProgress &&
		perr.Kind != problem.Unavailable {
		// A domain error is the request's answer: store it so retries get the same.
		cerr := s.store.Tx(bg, scope, func(tx Tx) error {
			return tx.CompleteIdempotency(bg, p.BrandID, idem.Key, claimedAt, problemOutcome(perr))
		})
		if cerr != nil {
			s.log.Error("store idempotent error outcome", "err", cerr)
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
	now := s.Now()
	inProgress := problem.New(problem.IdempotencyInProgress, "a request with this Idempotency-Key is still being processed; retry later")
	err := s.store.Tx(ctx, BrandScope(brandID), func(tx Tx) error {
		ex, ok, err := tx.ClaimIdempotency(ctx, IdemRow{BrandID: brandID, Key: idem.Key, Fingerprint: idem.Fingerprint,
			State: IdemRunning, CreatedAt: now, LockedAt: now}, now.Add(-IdempotencyRetention))
		if problem.Is(err, problem.NotFound) {
			return inProgress // the holder released it between our insert and read: retry
		}
		if err != nil || ok {
			return err
		}
		if string(ex.Fingerprint) != string(idem.Fingerprint) {
			return problem.New(problem.IdempotencyKeyReused, "this Idempotency-Key was used with a different request")
		}
		if ex.State == IdemDone {
			return ex.Outcome.replay()
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
