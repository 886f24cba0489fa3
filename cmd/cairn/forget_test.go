package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/plan"
)

func TestFlagError(t *testing.T) {
	for pol, want := range map[*plan.Retention]string{
		{KeepWeekly: -3}:              "--keep-weekly: -3 is negative",
		{KeepTags: []string{"", "x"}}: "--keep-tag: empty tag",
		{KeepWithin: "soon"}:          `--keep-within: invalid duration "soon"`,
	} {
		err := flagError(pol.Validate())
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", *pol, err, want)
		}
	}
	other := errors.New("other")
	if flagError(other) != other {
		t.Fatal("a plain error changed")
	}
}
