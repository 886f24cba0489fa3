package location

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/faulty"
)

// Faulty is a test aid: "faulty+LOCATION?PARAMS" is LOCATION (a path or
// any registered URL) behind the fault injector of package faulty, with
// retries on top as for remote storage, so that tests and demos can run
// the real command line against bad storage (DESIGN.md §9, issue 14):
//
//	faulty+/srv/repo?errors=0.01&lost=0.005&listlag=2s&deletelag=2s&latency=5ms&seed=1
//
// Parameters, all optional: errors and lost (probabilities of a transient
// error and of a lost response per call), latency, listlag and deletelag
// (durations), seed (default 1), only (operations the faults affect,
// comma-separated: save,load,stat,remove,list,create). The lags are those
// of one process: another process sees this one's writes at once. The
// repository's settle time is at least the longer lag.
var Faulty = &Scheme{
	Name:     "faulty",
	Prefixes: []string{"faulty+"},
	Key: func(loc string) string {
		inner, query, err := splitFaulty(loc)
		if err != nil {
			return loc
		}
		if l, err := Parse(inner); err == nil {
			inner = l.Key()
		}
		return "faulty+" + inner + "?" + query
	},
	Display: func(loc string) string {
		inner, query, err := splitFaulty(loc)
		if err != nil {
			return redact(loc)
		}
		return "faulty+" + Display(inner) + "?" + query
	},
	Hidden:   true,
	Open:     openFaulty,
	Adjust:   adjustFaulty,
	Defaults: Defaults{Decorators: []Decorator{Retry}},
}

// splitFaulty splits "faulty+INNER?QUERY" at its last '?'.
func splitFaulty(loc string) (inner, query string, err error) {
	rest := trimPrefix(loc, "faulty+")
	if i := strings.LastIndexByte(rest, '?'); i >= 0 {
		rest, query = rest[:i], rest[i+1:]
	}
	if rest == "" {
		return "", "", fmt.Errorf("%q: no location after faulty+", loc)
	}
	return rest, query, nil
}

// parseFaulty reads a faulty+ location: the inner location and the faults.
func parseFaulty(loc string) (Location, faulty.Options, error) {
	innerLoc, query, err := splitFaulty(loc)
	if err != nil {
		return Location{}, faulty.Options{}, err
	}
	inner, err := Parse(innerLoc)
	if err != nil {
		return Location{}, faulty.Options{}, err
	}
	if inner.scheme.Name == "faulty" {
		return Location{}, faulty.Options{}, fmt.Errorf("%q: faulty+ twice", loc)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return Location{}, faulty.Options{}, fmt.Errorf("%q: %v", loc, err)
	}
	o := faulty.Options{Seed: 1}
	for k, vs := range q {
		v := vs[len(vs)-1]
		var err error
		switch k {
		case "errors":
			o.ErrorRate, err = parseRate(v)
		case "lost":
			o.LostResponseRate, err = parseRate(v)
		case "latency":
			o.Latency, err = time.ParseDuration(v)
		case "listlag":
			o.ListLag, err = time.ParseDuration(v)
		case "deletelag":
			o.DeleteLag, err = time.ParseDuration(v)
		case "seed":
			o.Seed, err = strconv.ParseUint(v, 10, 64)
		case "only":
			for _, op := range strings.Split(v, ",") {
				switch op {
				case faulty.OpSave, faulty.OpLoad, faulty.OpStat, faulty.OpRemove, faulty.OpList, faulty.OpCreate:
					o.Only = append(o.Only, op)
				default:
					err = fmt.Errorf("unknown operation %q", op)
				}
			}
		default:
			err = fmt.Errorf("unknown parameter (want errors, lost, latency, listlag, deletelag, seed or only)")
		}
		if err != nil {
			return Location{}, faulty.Options{}, fmt.Errorf("faulty+ parameter %s=%s: %v", k, v, err)
		}
	}
	return inner, o, nil
}

func parseRate(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1 {
		return 0, fmt.Errorf("not a probability between 0 and 1")
	}
	return f, nil
}

func openFaulty(ctx context.Context, loc string, o Options) (backend.Backend, error) {
	inner, fo, err := parseFaulty(loc)
	if err != nil {
		return nil, err
	}
	be, err := inner.scheme.Open(ctx, inner.loc, o)
	if err != nil {
		return nil, err
	}
	return faulty.New(be, fo), nil
}

// adjustFaulty gives a faulty+ location its inner location's defaults,
// with retries over the faults and a settle time covering the lags.
func adjustFaulty(loc string, d Defaults) Defaults {
	inner, fo, err := parseFaulty(loc)
	if err != nil {
		return d
	}
	id := inner.Defaults()
	id.Decorators = d.Decorators
	id.Settle = max(id.Settle, fo.ListLag, fo.DeleteLag)
	return id
}

func init() { Register(Faulty) }
