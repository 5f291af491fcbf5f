package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one process of the topology, started and signalled by the harness: the faults
// are real signals to real processes (SIGKILL, SIGSTOP/SIGCONT, a clean stop).
type Proc struct {
	Name string
	Path string
	Args []string
	Env  []string // added to the harness' environment
	// Cred runs the process as another user (Postgres refuses to run as root).
	Cred *syscall.Credential
	// Log receives stdout and stderr (appended).
	Log string
	// StopSignal ends the process cleanly (default SIGTERM; Postgres: SIGINT, a fast
	// shutdown).
	StopSignal syscall.Signal
	// Ready says whether the started process serves (polled after Start).
	Ready func(ctx context.Context) error

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	paused bool
}

// Start starts the process and waits until Ready (or it exits, or ctx ends).
func (p *Proc) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.running() {
		p.mu.Unlock()
		return fmt.Errorf("%s: already running", p.Name)
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	fmt.Fprintf(logf, "\n=== %s start %s\n", p.Name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	// its own process group (a kill reaches its children too); killed if the harness dies
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: p.Cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.mu.Unlock()
		return fmt.Errorf("%s: start: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	p.cmd, p.done, p.paused = cmd, done, false
	p.mu.Unlock()
	if p.Ready == nil {
		return nil
	}
	return p.waitReady(ctx, done)
}

func (p *Proc) waitReady(ctx context.Context, done chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last error
	for {
		select {
		case <-done:
			return fmt.Errorf("%s exited before it was ready (log %s): %s", p.Name, p.Log, tail(p.Log, 15))
		default:
		}
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		last = p.Ready(rctx)
		rcancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (log %s)", p.Name, last, p.Log)
		case <-done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *Proc) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Running reports whether the process is alive (paused counts as alive).
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running()
}

// Pid is the process id (0 when not running).
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill sends SIGKILL to the process group and waits for the process to end.
func (p *Proc) Kill() error {
	p.mu.Lock()
	if !p.running() {
		p.mu.Unlock()
		return nil
	}
	pid, done := p.cmd.Process.Pid, p.done
	p.mu.Unlock()
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s (pid %d) survived SIGKILL", p.Name, pid)
	}
}

// Signal sends sig to the process (not its group).
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running() {
		return fmt.Errorf("%s is not running", p.Name)
	}
	return p.cmd.Process.Signal(sig)
}

// Stop ends the process with its stop signal, killing it after timeout.
func (p *Proc) Stop(timeout time.Duration) error {
	p.mu.Lock()
	if !p.running() {
		p.mu.Unlock()
		return nil
	}
	pid, done, paused := p.cmd.Process.Pid, p.done, p.paused
	p.mu.Unlock()
	sig := p.StopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	_ = syscall.Kill(pid, sig)
	if paused {
		_ = syscall.Kill(-pid, syscall.SIGCONT)
	}
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return p.Kill()
	}
}

// Pause stops the process group with SIGSTOP (a stalled process: its sockets stay open).
func (p *Proc) Pause() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running() {
		return fmt.Errorf("%s is not running", p.Name)
	}
	p.paused = true
	return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGSTOP)
}

// Resume continues a paused process group.
func (p *Proc) Resume() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running() {
		return fmt.Errorf("%s is not running", p.Name)
	}
	p.paused = false
	return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT)
}

// Wait waits until the process has ended (after a signal sent some other way).
func (p *Proc) Wait(ctx context.Context) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s did not end: %w", p.Name, ctx.Err())
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var errNotOwned = errors.New("not started by the harness")
