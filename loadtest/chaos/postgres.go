package chaos

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
)

// What the fault harness and loadtest/sim share to run their own Postgres servers.

// PGBinDir finds the Postgres server binaries (PG_BIN, else the newest Debian install,
// preferring 15 like deploy/local/lib.sh).
func PGBinDir() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	if _, err := os.Stat("/usr/lib/postgresql/15/bin/initdb"); err == nil {
		return "/usr/lib/postgresql/15/bin", nil
	}
	ds, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(ds) == 0 {
		return "", errors.New("postgres server binaries not found (run deploy/local/deps.sh or set PG_BIN)")
	}
	sort.Strings(ds)
	return filepath.Dir(ds[len(ds)-1]), nil
}

// PGBase makes an empty folder for Postgres data directories, dir/pg, and returns it with
// the credentials the servers must run with (nil: the current user). Postgres refuses to
// run as root: as root the servers run as the postgres OS user (created when missing),
// in a folder it reaches, /var/tmp/licensing-<tag>-<hash of dir>.
func PGBase(ctx context.Context, dir, tag string) (string, *syscall.Credential, error) {
	base := filepath.Join(dir, "pg")
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			if out, err := exec.CommandContext(ctx, "useradd", "--system", "--user-group", "--home-dir", "/var/lib/postgresql",
				"--shell", "/bin/sh", "postgres").CombinedOutput(); err != nil {
				return "", nil, fmt.Errorf("useradd postgres: %w: %s", err, out)
			}
			if u, err = user.Lookup("postgres"); err != nil {
				return "", nil, err
			}
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		base = fmt.Sprintf("/var/tmp/licensing-%s-%08x", tag, crc32.ChecksumIEEE([]byte(dir)))
	}
	if err := os.RemoveAll(base); err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", nil, err
	}
	if cred != nil {
		if err := os.Chown(base, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", nil, err
		}
	}
	return base, cred, nil
}

// InitPrimary creates a primary's data directory in dir (initdb as cred) listening on
// 127.0.0.1:port, ready for streaming replicas. The superuser postgres is trusted; the
// application roles log in with the passwords SetPasswords gives them after the migration.
func InitPrimary(ctx context.Context, pgBin, dir string, port int, cred *syscall.Credential, sharedBuffers string) error {
	if err := RunAs(ctx, cred, nil, filepath.Join(pgBin, "initdb"), "-D", dir, "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--no-locale"); err != nil {
		return err
	}
	// crashes here are process crashes, never machine crashes: writes reaching the kernel
	// survive them, so fsync can be off; synchronous_commit stays on (an acknowledged
	// commit is in the kernel, not only in Postgres' WAL buffers)
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = ''
max_connections = 300
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '256MB'
hot_standby = on
hot_standby_feedback = on
fsync = off
full_page_writes = off
shared_buffers = '%s'
`, port, sharedBuffers)
	if err := AppendFile(filepath.Join(dir, "postgresql.conf"), conf); err != nil {
		return err
	}
	hba := "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n" +
		"host all all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(dir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return err
	}
	if cred != nil {
		_ = os.Chown(filepath.Join(dir, "pg_hba.conf"), int(cred.Uid), int(cred.Gid))
	}
	return nil
}

// SetPasswords gives the application roles the migration created their names as
// passwords (the local topologies' convention), over adminURL.
func SetPasswords(ctx context.Context, adminURL string) error {
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	for _, role := range []string{"license_app", "license_edge"} {
		if _, err := c.Exec(ctx, fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", pgx.Identifier{role}.Sanitize(), role)); err != nil {
			return fmt.Errorf("password of %s: %w", role, err)
		}
	}
	return nil
}

// AppendFile appends s to the existing file at path.
func AppendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// RunAs runs a command to completion as cred (nil: the current user) with env added,
// returning its combined output on failure.
func RunAs(ctx context.Context, cred *syscall.Credential, env []string, path string, args ...string) error {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", path, strings.Join(args, " "), err, out)
	}
	return nil
}

// LoadAvg is the 1, 5 and 15 minute load averages ("?" where /proc has none), for reports.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
