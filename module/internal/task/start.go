package task

import (
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults for the zero values of Spec.
const (
	DefaultGrace = 10 * time.Second
	DefaultDrain = 2 * time.Second
	DefaultPath  = "/usr/local/bin:/usr/bin:/bin"
)

// Spec is what to run. Args[0] is argv[0]; Path is the executable to exec:
// an absolute path, a path relative to Dir, or a name without a slash that
// Start resolves with the PATH of Env (DefaultPath when Env has none).
type Spec struct {
	Path      string
	Args      []string      // argv; empty means {Path}
	Env       []string      // the whole environment; nothing inherited
	Dir       string        // working directory (absolute); "" means "/"
	User      string        // "" = this process's user; else a user name or numeric uid
	Stdin     []byte        // given to the command then closed; nil = /dev/null
	Timeout   time.Duration // 0 = none
	Grace     time.Duration // between SIGTERM and SIGKILL of the group; 0 means DefaultGrace
	OutputDir string        // directory for the stdout/stderr spool files (created 0700 at the first byte of output; the caller removes it)
	MaxOutput int64         // bytes stored per stream (head + tail); 0 means DefaultMaxOutput
	// Drain bounds how long output is still read after the leader was
	// reaped and its group killed (a process that left the group may hold
	// the pipes open); 0 means DefaultDrain.
	Drain time.Duration
	// Sentinel, when set, is told the task's group at Start and its end
	// after the group was killed, so the group and session die even if
	// this process dies first (see Sentinel). nil: Pdeathsig only (the
	// leader dies with this process; what it started in the background
	// does not).
	Sentinel *Sentinel
	// Reaper, when set, kills the command's descendants that escape its
	// group and session, at the latest when the task ends (see Reaper).
	// nil: the Sentinel's, if it was started WithReaper. A process with
	// a Reaper must give it to every task it starts.
	Reaper *Reaper
}

// normalize fills in the defaults of s and checks what needs no system.
func normalize(s Spec) (Spec, error) {
	if s.Dir == "" {
		s.Dir = "/"
	}
	if s.Grace <= 0 {
		s.Grace = DefaultGrace
	}
	if s.Drain <= 0 {
		s.Drain = DefaultDrain
	}
	if s.MaxOutput == 0 {
		s.MaxOutput = DefaultMaxOutput
	}
	if s.Reaper == nil && s.Sentinel != nil {
		s.Reaper = s.Sentinel.reaper
	}
	if s.Env == nil {
		s.Env = []string{} // nil would make os/exec inherit our environment
	}
	switch {
	case s.Path == "" && len(s.Args) > 0:
		s.Path = s.Args[0]
	case s.Path == "":
		return s, startErr("path", nil, []error{ErrNotFound}, "no command given")
	case len(s.Args) == 0:
		s.Args = []string{s.Path}
	}
	if s.MaxOutput < 0 {
		return s, &StartError{Op: "spool", Err: errors.New("negative MaxOutput")}
	}
	if s.OutputDir == "" {
		return s, &StartError{Op: "spool", Err: errors.New("no OutputDir for the output spool")}
	}
	return s, nil
}

// checkDir checks that dir is an absolute path to a directory.
func checkDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return startErr("dir", nil, []error{ErrBadDir}, "working directory %q: not an absolute path", dir)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return startErr("dir", err, []error{ErrBadDir}, "working directory %q: %s", dir, sysText(err))
	}
	if !fi.IsDir() {
		return startErr("dir", syscall.ENOTDIR, []error{ErrBadDir}, "working directory %q: not a directory", dir)
	}
	return nil
}

// sysText is the plain system reason of err, without a *PathError's
// "op path:" prefix.
func sysText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// resolveUser returns the credential to run as name, or nil for this
// process's own user, for a service running with effective uid euid.
// Switching users needs euid 0.
func resolveUser(name string, euid int) (*syscall.Credential, error) {
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		if _, numErr := strconv.ParseUint(name, 10, 32); numErr == nil {
			u, err = user.LookupId(name)
		}
	}
	if err != nil {
		return nil, startErr("user", err, []error{ErrBadUser}, "unknown user %q", name)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, startErr("user", err, []error{ErrBadUser}, "user %q: non-numeric uid or gid", name)
	}
	if euid != 0 {
		if uint64(euid) == uid {
			return nil, nil
		}
		return nil, startErr("user", nil, []error{ErrBadUser, ErrPermission}, "running as user %q needs this service to run as root", name)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, startErr("user", err, []error{ErrBadUser}, "user %q: groups: %v", name, err)
	}
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			cred.Groups = append(cred.Groups, uint32(n))
		}
	}
	return cred, nil
}

// envPath returns the PATH of env (the last one wins, as in os/exec), or
// DefaultPath when env has none.
func envPath(env []string) string {
	path := DefaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	return path
}

// resolvePath returns the absolute executable for s, checked to be an
// executable regular file for cred (nil: this process's user).
func resolvePath(s Spec, cred *syscall.Credential) (string, error) {
	if strings.Contains(s.Path, "/") {
		p := s.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(s.Dir, p)
		}
		return p, checkExecutable(p, cred)
	}
	path := envPath(s.Env)
	var denied error
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue // "" and relative entries would depend on Dir: never searched
		}
		p := filepath.Join(dir, s.Path)
		err := checkExecutable(p, cred)
		if err == nil {
			return p, nil
		}
		if denied == nil && errors.Is(err, ErrPermission) {
			denied = err
		}
	}
	if denied != nil {
		return "", denied
	}
	return "", startErr("path", fs.ErrNotExist, []error{ErrNotFound}, "executable file not found: %q on PATH %s", s.Path, path)
}

// checkExecutable checks that p is a regular file that cred (nil: this
// process's effective user) may execute.
func checkExecutable(p string, cred *syscall.Credential) error {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return startErr("path", err, []error{ErrNotFound}, "executable file not found: %s", p)
		}
		return startErr("path", err, []error{ErrPermission}, "permission denied: %s: %s", p, sysText(err))
	}
	if fi.IsDir() {
		return startErr("path", syscall.EISDIR, []error{ErrPermission}, "permission denied: %s is a directory", p)
	}
	if !fi.Mode().IsRegular() || !mayExec(p, fi, cred) {
		return startErr("path", syscall.EACCES, []error{ErrPermission}, "permission denied: %s is not executable", p)
	}
	return nil
}

// mayExec reports whether cred (nil: this process) may execute the file p
// described by fi, going by its permission bits.
func mayExec(p string, fi fs.FileInfo, cred *syscall.Credential) bool {
	if cred == nil {
		return unix.Faccessat(unix.AT_FDCWD, p, unix.X_OK, unix.AT_EACCESS) == nil
	}
	mode := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case cred.Uid == 0 || !ok:
		return mode&0o111 != 0
	case st.Uid == cred.Uid:
		return mode&0o100 != 0
	case st.Gid == cred.Gid || containsGid(cred.Groups, st.Gid):
		return mode&0o010 != 0
	default:
		return mode&0o001 != 0
	}
}

func containsGid(gids []uint32, g uint32) bool {
	for _, x := range gids {
		if x == g {
			return true
		}
	}
	return false
}

// execError maps an error of exec.Cmd.Start for executable path to a
// *StartError of the right class.
func execError(err error, s Spec, path string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Op == "chdir" {
		return startErr("dir", err, []error{ErrBadDir}, "working directory %q: %s", s.Dir, sysText(err))
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return startErr("exec", err, nil, "cannot execute %s: %v", path, err)
	}
	switch errno {
	case syscall.ENOENT, syscall.ENOTDIR:
		return startErr("exec", err, []error{ErrNotFound}, "executable file not found: %s (or its interpreter, or working directory %q)", path, s.Dir)
	case syscall.EACCES, syscall.EPERM:
		return startErr("exec", err, []error{ErrPermission}, "permission denied: cannot execute %s in %s%s", path, s.Dir, asUser(s.User))
	case syscall.ENOEXEC:
		return startErr("exec", err, []error{ErrExecFormat}, "exec format error: %s is not a binary or script this system can run", path)
	default:
		return startErr("exec", err, nil, "cannot execute %s: %s", path, errno)
	}
}

func asUser(name string) string {
	if name == "" {
		return ""
	}
	return " as user " + strconv.Quote(name)
}
