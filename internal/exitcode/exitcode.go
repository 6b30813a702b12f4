// Package exitcode is the single table of process exit codes of rotate-key. Commands return errors; only main turns
// an error into a code (through Of), so a code means the same thing whichever command produced it, and scripts,
// cron jobs and Helm (which passes a plugin's exit code through as its own) can branch on it.
package exitcode

import (
	"errors"
	"fmt"
	"strings"
)

// Code is a process exit code of rotate-key.
type Code int

// The exit codes. Their numbers are a public contract (docs/exit-codes.md): never renumber, only add.
const (
	// OK: the command did what was asked, or there was nothing to do.
	OK Code = 0
	// Failure: an unexpected error, such as an unreachable API server; retrying may help.
	Failure Code = 1
	// Usage: the command line was wrong (unknown flag, missing argument, bad value); nothing was changed.
	Usage Code = 2
	// Waiting: a rotation is in progress and its next step is not due yet (the old key's retirement waits for the
	// token TTL); nothing is wrong.
	Waiting Code = 3
	// LockHeld: another run holds the rotation lock, or the hook path's helm upgrade of the release may still run;
	// nothing was changed.
	LockHeld Code = 4
	// Overdue: `check` found a rotation or retirement past its due date, or a retired version back in the keyring.
	Overdue Code = 5
	// Refused: the request would break the keyring (an invariant, or the upgrade guard said no); nothing was
	// changed.
	Refused Code = 6
)

// Entry describes one exit code for the documentation and `--help`.
type Entry struct {
	Code    Code
	Name    string
	Meaning string
}

// Table lists every exit code in ascending order. docs/exit-codes.md is checked against it by a test.
var Table = []Entry{
	{OK, "ok", "Done, or nothing to do."},
	{Failure, "failure", "Unexpected error (API server unreachable, timeout, I/O); safe to retry."},
	{Usage, "usage", "Bad command line: unknown flag, missing or extra argument, invalid value. Nothing changed."},
	{Waiting, "waiting", "A rotation is in progress and its next step is not due yet (retirement waits for the token TTL)."},
	{LockHeld, "lock-held", "Another run holds the rotation lock, or a hook-path `helm upgrade` of the release may still run. Nothing changed."},
	{Overdue, "overdue", "`check`: a rotation or a retirement is past its due date, or a retired key version is back in the keyring."},
	{Refused, "refused", "Refused to protect the keyring: an invariant would break, or the upgrade guard found a violation. Nothing changed."},
}

// Error carries the exit code an error should end the process with. Wrap with With; the message is the wrapped
// error's, so the code never changes what the operator reads.
type Error struct {
	Code Code
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap lets errors.Is and errors.As see through the code.
func (e *Error) Unwrap() error { return e.Err }

// With attaches code to err. A nil err stays nil.
func With(code Code, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// Withf is fmt.Errorf followed by With; use %w to keep the cause.
func Withf(code Code, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// Of returns the exit code for err: OK for nil, the outermost attached code, or Failure when none is attached.
func Of(err error) Code {
	if err == nil {
		return OK
	}
	var coded *Error
	if errors.As(err, &coded) {
		return coded.Code
	}
	return Failure
}

// Markdown renders Table as a Markdown table, the form docs/exit-codes.md embeds.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| code | name | meaning |\n|---:|---|---|\n")
	for _, e := range Table {
		fmt.Fprintf(&b, "| %d | `%s` | %s |\n", e.Code, e.Name, e.Meaning)
	}
	return b.String()
}
