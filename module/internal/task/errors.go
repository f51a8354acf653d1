package task

import (
	"errors"
	"fmt"
)

// Error classes, for errors.Is. A *StartError matches exactly one of
// ErrNotFound, ErrPermission, ErrBadDir, ErrBadUser and ErrExecFormat (a
// user switch refused because the service is not root matches both
// ErrBadUser and ErrPermission), and also the underlying system error when
// there is one (for example fs.ErrNotExist or syscall.ENOENT).
var (
	ErrNotFound   = errors.New("executable file not found")
	ErrPermission = errors.New("permission denied")
	ErrBadDir     = errors.New("bad working directory")
	ErrBadUser    = errors.New("bad user")
	ErrExecFormat = errors.New("exec format error")

	// ErrEnded is returned by Signal once the task's leader has exited.
	ErrEnded = errors.New("task: already ended")

	// ErrDropped is wrapped by the *DroppedError that Output.ReadAt
	// returns for an offset whose bytes were not kept.
	ErrDropped = errors.New("task: output dropped")
)

// StartError is the error of Start. Op names the step that failed ("dir",
// "user", "path", "exec", "pipe", "spool"); Err says why in plain words.
type StartError struct {
	Op  string
	Err error
}

func (e *StartError) Error() string { return "task: start: " + e.Err.Error() }

// Unwrap returns the cause, which matches the error class and the
// underlying system error with errors.Is.
func (e *StartError) Unwrap() error { return e.Err }

// cause is a readable message that belongs to one or more error classes
// and may wrap a system error.
type cause struct {
	msg     string
	classes []error
	err     error
}

func (c *cause) Error() string { return c.msg }

func (c *cause) Unwrap() []error {
	errs := append([]error(nil), c.classes...)
	if c.err != nil {
		errs = append(errs, c.err)
	}
	return errs
}

// startErr builds a *StartError for op with a formatted message, the error
// classes and an optional underlying error.
func startErr(op string, err error, classes []error, format string, args ...any) *StartError {
	return &StartError{Op: op, Err: &cause{msg: fmt.Sprintf(format, args...), classes: classes, err: err}}
}

// DroppedError says that the bytes at Off were not kept (the stream was
// truncated) and that kept data resumes at Resume.
type DroppedError struct {
	Off, Resume int64
}

func (e *DroppedError) Error() string {
	return fmt.Sprintf("task: output: offset %d was dropped; kept data resumes at %d", e.Off, e.Resume)
}

func (e *DroppedError) Unwrap() error { return ErrDropped }
