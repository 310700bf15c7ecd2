package api

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"
)

// docs/openapi.json describes exactly the routes the API serves, and each
// of its references resolves.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	raw, err := os.ReadFile("../../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docs/openapi.json: %v", err)
	}
	documented := map[string]bool{}
	for path, item := range doc["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			if method != "parameters" {
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	a, err := New(Config{Keys: []string{testKey}, Backend: &fakeBackend{}})
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, r := range a.Routes() {
		if strings.HasSuffix(r, ".js") || strings.HasSuffix(r, ".css") {
			continue // the monitor page's own files
		}
		served[r] = true
		if !documented[r] {
			t.Errorf("%s is served but not documented", r)
		}
	}
	for r := range documented {
		if !served[r] {
			t.Errorf("%s is documented but not served", r)
		}
	}
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if k == "$ref" {
					refs = append(refs, e.(string))
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	sort.Strings(refs)
	if len(refs) < 20 {
		t.Fatalf("only %d references: the walk is broken", len(refs))
	}
	for _, ref := range refs {
		var node any = doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, ok := node.(map[string]any)
			if !ok || m[part] == nil {
				t.Fatalf("reference %s does not resolve", ref)
			}
			node = m[part]
		}
	}
}
