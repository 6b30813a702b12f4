package exitcode

import (
	"errors"
	"fmt"
	"testing"
)

func TestOf(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want Code
	}{
		{"nil is ok", nil, OK},
		{"plain error is failure", base, Failure},
		{"coded", With(LockHeld, base), LockHeld},
		{"coded then wrapped keeps the code", fmt.Errorf("context: %w", With(Refused, base)), Refused},
		{"outermost code wins", With(Usage, fmt.Errorf("x: %w", With(Refused, base))), Usage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.err); got != tt.want {
				t.Fatalf("Of() = %d, want %d", got, tt.want)
			}
		})
	}
	if With(Refused, nil) != nil {
		t.Fatal("With(code, nil) must stay nil")
	}
	if err := With(Refused, base); !errors.Is(err, base) || err.Error() != "boom" {
		t.Fatalf("With must keep the cause and the message, got %q", err)
	}
}

func TestTableIsOrderedAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for i, e := range Table {
		if i > 0 && Table[i-1].Code >= e.Code {
			t.Fatalf("table not ascending at %d", e.Code)
		}
		if seen[e.Name] || e.Meaning == "" {
			t.Fatalf("entry %d: duplicate name or empty meaning", e.Code)
		}
		seen[e.Name] = true
	}
}
