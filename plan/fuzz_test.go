package plan

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds the configuration parser arbitrary text: it must never
// panic, every error must be an *Error with a position inside the text,
// and what it accepts must survive Marshal and Parse unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(designExample))
	f.Add([]byte(doc(okPlan)))
	f.Add([]byte(`{"plans": {"a": {"sources": ["/x"], "repos": ["r"], "exclude": ["**/b/", "[!a]*"]}}, "repos": {"r": {"url": "s3://h/b"}}}`))
	f.Add([]byte(`{"repos": {"r": {"url": "/r", "password_env": "P"}}, "plans": {"a": {"sources": ["/x"], "repos": ["r"], "hooks": {"env": ["LANG", "X=1=2", "P"], "public_output": true}}}}`))
	f.Add([]byte(`{"repos": {}, "plans": {}}`))
	f.Add([]byte("{\"plans\": {\"h\u00e4me\": []}}"))
	f.Add([]byte(`{"a": [1, 2, {"b": null}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("%T %v", err, err)
			}
			if e.Line < 1 || e.Column < 1 {
				t.Fatalf("no position: %v", err)
			}
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parsing what Marshal wrote: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, c2)
		}
	})
}

// FuzzParsePlan does the same for one plan's text.
func FuzzParsePlan(f *testing.F) {
	f.Add([]byte(`{"sources": ["/home/alice"], "repos": ["local"], "schedule": "0 4 * * *", "retention": {"keep_daily": 7, "keep_within": "2d"}}`))
	f.Add([]byte(`{"sources": ["/x"], "repos": ["r"], "hooks": {"before": ["true"], "timeout": "1m"}, "jitter": "5m"}`))
	f.Add([]byte(`{"sources": ["/x"], "repos": ["r"], "hooks": {"after": ["env"], "env": ["HOME=/h", "TERM"], "public_output": false}}`))
	f.Add([]byte(`{"sources": ["/x"], "repos": ["r"], "hooks": {"env": ["CAIRN_PASSWORD"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePlan(data)
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Line < 1 {
				t.Fatalf("%T %v", err, err)
			}
			return
		}
		c := &Config{Repos: map[string]RepoDef{}, Plans: map[string]Plan{"p": p}}
		for _, r := range p.Repos {
			c.Repos[r] = RepoDef{URL: "/r"}
		}
		if _, err := c.ParsePlan(data); err != nil {
			t.Fatalf("with its repositories defined: %v", err)
		}
		// What one plan accepts, a whole configuration accepts, except
		// for the names of its repositories.
		if err := c.Validate(); err != nil {
			if e, ok := err.(*Error); !ok || !strings.HasPrefix(e.Path, "repos") {
				t.Fatalf("%v", err)
			}
		}
	})
}
