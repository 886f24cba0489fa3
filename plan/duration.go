package plan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads a duration as Go writes them ("90m", "1h30m",
// "10s") with two more units: "d" for 24 hours and "w" for 7 days, whole
// numbers only ("7d", "2w", "1d12h"). Negative durations are refused.
func ParseDuration(s string) (time.Duration, error) {
	days, rest, err := parseDuration(s)
	if err != nil {
		return 0, err
	}
	const maxDays = int(time.Duration(1<<63-1) / (24 * time.Hour))
	if days > maxDays || time.Duration(days)*24*time.Hour > time.Duration(1<<63-1)-rest {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	return time.Duration(days)*24*time.Hour + rest, nil
}

// parseDuration splits s into whole days (from "d" and "w") and the rest,
// so that keep_within can count days on the calendar.
func parseDuration(s string) (days int, rest time.Duration, err error) {
	bad := func(why string) error { return fmt.Errorf("invalid duration %q: %s", s, why) }
	if s == "" {
		return 0, 0, errors.New("empty duration")
	}
	if strings.HasPrefix(s, "-") {
		return 0, 0, bad("negative")
	}
	if s == "0" {
		return 0, 0, nil
	}
	var goPart strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		k := j
		for k < len(s) && !(s[k] >= '0' && s[k] <= '9' || s[k] == '.') {
			k++
		}
		num, unit := s[i:j], s[j:k]
		if num == "" {
			return 0, 0, bad("want a number before " + strconv.Quote(unit))
		}
		if unit == "" {
			return 0, 0, bad("missing unit after " + num + ` (use s, m, h, d or w)`)
		}
		switch unit {
		case "d", "w":
			n, err := strconv.Atoi(num)
			if err != nil || n > 1<<40 {
				return 0, 0, bad("want a whole number of " + map[string]string{"d": "days", "w": "weeks"}[unit])
			}
			if unit == "w" {
				n *= 7
			}
			days += n
		default:
			goPart.WriteString(num + unit)
		}
		i = k
	}
	if goPart.Len() > 0 {
		d, err := time.ParseDuration(goPart.String())
		if err != nil {
			return 0, 0, bad(strings.TrimPrefix(err.Error(), "time: "))
		}
		rest = d
	}
	return days, rest, nil
}
