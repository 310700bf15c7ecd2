package gameserver_test

import (
	"os"
	"regexp"
	"testing"
)

// The README's example is examples/tag/main.go, which the build compiles:
// the two must stay the same text.
func TestReadmeExampleCompiles(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```go\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no Go example")
	}
	src, err := os.ReadFile("examples/tag/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(m[1]) != string(src) {
		t.Fatal("README's example differs from examples/tag/main.go")
	}
}
