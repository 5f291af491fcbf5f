package licensing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/licensing/licensing/shared/problem"
)

// IdempotencyTx is what idempotency records need of a transaction. A claim is a lease:
// its holder renews it while the request runs, anyone may take it over once it has not
// been renewed for IdempotencyLeaseTimeout, and completing or releasing it is fenced by
// the token the claim got.
type IdempotencyTx interface {
	// ClaimIdempotency inserts a running record (r carries its token and times), or
	// replaces one created before expiredBefore; ok is false when a live one exists, in
	// which case existing holds it (not_found when it vanished between the insert and the
	// read).
	ClaimIdempotency(ctx context.Context, r IdemRow, expiredBefore time.Time) (existing IdemRow, ok bool, err error)
	// TakeOverIdempotency gives a running record whose lease was last renewed before
	// staleBefore (its holder is gone or paused) the token token; ok is false when it is
	// not stale.
	TakeOverIdempotency(ctx context.Context, brandID, key string, fingerprint []byte, staleBefore, now time.Time, token string) (bool, error)
	// RenewIdempotency renews the lease held with token; ok is false when it is no
	// longer held (taken over).
	RenewIdempotency(ctx context.Context, brandID, key, token string, now time.Time) (bool, error)
	// CompleteIdempotency stores the outcome of the claim held with token; it returns
	// idempotency_in_progress when that claim is no longer held (taken over).
	CompleteIdempotency(ctx context.Context, brandID, key, token string, o StoredOutcome) error
	// ReleaseIdempotency deletes the running claim held with token.
	ReleaseIdempotency(ctx context.Context, brandID, key, token string) error
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
	// Token fences the claim; RenewedAt is when its holder last renewed it.
	Token     string
	RenewedAt time.Time
}

// StoredOutcome is what a finished request answered, without any transport's rendering:
// Kind is OutcomeOK and Body the resource's JSON, or Kind is the problem kind and Body the
// JSON of its detail.
type StoredOutcome struct {
	Kind string
	Body []byte
}

// OutcomeOK marks a stored success; OutcomeSealed one whose body is sealed because it
// carries a secret shown once (a webhook endpoint's signing secret): the record holds
// it encrypted with the webhook key, bound to the brand and the Idempotency-Key.
const (
	OutcomeOK     = "ok"
	OutcomeSealed = "sealed"
)

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

// sealedOutcomeAD binds a sealed outcome to its record.
func sealedOutcomeAD(brandID, key string) []byte {
	return []byte("idempotency:" + brandID + ":" + key)
}

// replay turns a stored outcome back into what the operation returns.
func (s *Service) replay(o StoredOutcome, brandID, key string) error {
	if o.Kind == OutcomeSealed {
		if s.webhooks.Sealer == nil {
			return fmt.Errorf("replay: a sealed outcome and no webhook key configured")
		}
		body, err := s.webhooks.Sealer.Open(o.Body, sealedOutcomeAD(brandID, key))
		if err != nil {
			return fmt.Errorf("replay: open sealed outcome: %w", err)
		}
		return &Replay{Body: body}
	}
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

// IdempotencyLeaseTimeout is how long a claim may go without renewal before it is
// considered abandoned (its writer crashed or is paused) and may be taken over;
// IdempotencyRenewEvery is how often a live holder renews it.
const (
	IdempotencyLeaseTimeout = 3 * time.Second
	IdempotencyRenewEvery   = time.Second
)

// idempotent runs fn in one transaction of the principal's brand. With an idempotency key
// in m, the key is claimed first (in its own committed transaction, so a duplicate that
// arrives while fn runs sees it), the success outcome is stored in fn's transaction, and a
// domain error's outcome is stored after the rollback; an internal error releases the
// claim so that a retry may run again.
func idempotent[T any](s *Service, ctx context.Context, m Meta, p Principal, fn func(Tx) (T, error)) (T, error) {
	return idempotentOutcome(s, ctx, m, p, false, fn)
}

// idempotentSealed is idempotent for an answer that carries a secret shown once: the
// stored outcome is sealed (OutcomeSealed).
func idempotentSealed[T any](s *Service, ctx context.Context, m Meta, p Principal, fn func(Tx) (T, error)) (T, error) {
	return idempotentOutcome(s, ctx, m, p, true, fn)
}

func idempotentOutcome[T any](s *Service, ctx context.Context, m Meta, p Principal, sealed bool, fn func(Tx) (T, error)) (T, error) {
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
	token, err := s.claim(ctx, p.BrandID, idem)
	if err != nil {
		return zero, err
	}
	stopRenewing := s.renewWhileRunning(ctx, p.BrandID, idem.Key, token)
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
		if sealed {
			if s.webhooks.Sealer == nil {
				return fmt.Errorf("seal outcome: no webhook key configured")
			}
			o = StoredOutcome{Kind: OutcomeSealed, Body: s.webhooks.Sealer.Seal(o.Body, sealedOutcomeAD(p.BrandID, idem.Key))}
		}
		// fenced by the token: if a retry took the claim over meanwhile (this writer was
		// paused, or lost its database for longer than the lease), this transaction rolls
		// back instead of applying the request a second time
		return tx.CompleteIdempotency(ctx, p.BrandID, idem.Key, token, o)
	})
	stopRenewing()
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
			return tx.CompleteIdempotency(bg, p.BrandID, idem.Key, token, problemOutcome(perr))
		})
		if cerr != nil {
			s.log.Error("store idempotent error outcome", "err", cerr)
		}
		return zero, err
	}
	rerr := s.store.Tx(bg, scope, func(tx Tx) error {
		return tx.ReleaseIdempotency(bg, p.BrandID, idem.Key, token)
	})
	if rerr != nil {
		s.log.Error("release idempotency key", "err", rerr)
	}
	return zero, err
}

// renewWhileRunning renews the claim every IdempotencyRenewEvery until the returned
// function is called; it stops by itself when the claim is no longer held.
func (s *Service) renewWhileRunning(ctx context.Context, brandID, key, token string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(IdempotencyRenewEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			var held bool
			rctx := context.WithoutCancel(ctx)
			err := s.store.Tx(rctx, BrandScope(brandID), func(tx Tx) error {
				var err error
				held, err = tx.RenewIdempotency(rctx, brandID, key, token, s.Now())
				return err
			})
			if err == nil && !held {
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// claim takes the idempotency key for this request and returns the claim's token, which
// fences the later completion. A record older than the retention is expired and claimed
// afresh; a running one whose lease was not renewed in time is taken over.
func (s *Service) claim(ctx context.Context, brandID string, idem *Idempotency) (string, error) {
	now := s.Now()
	token := newID()
	inProgress := problem.New(problem.IdempotencyInProgress, "a request with this Idempotency-Key is still being processed; retry later")
	err := s.store.Tx(ctx, BrandScope(brandID), func(tx Tx) error {
		ex, ok, err := tx.ClaimIdempotency(ctx, IdemRow{BrandID: brandID, Key: idem.Key, Fingerprint: idem.Fingerprint,
			State: IdemRunning, CreatedAt: now, Token: token, RenewedAt: now}, now.Add(-IdempotencyRetention))
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
			return s.replay(ex.Outcome, brandID, idem.Key)
		}
		taken, err := tx.TakeOverIdempotency(ctx, brandID, idem.Key, idem.Fingerprint, now.Add(-IdempotencyLeaseTimeout), now, token)
		if err != nil {
			return err
		}
		if !taken {
			return inProgress
		}
		return nil
	})
	return token, err
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
