package gameserver_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gameserver/gameserver"
)

// get fetches path from the server's handler.
func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// TestWebDemo checks that the embedded web directory serves a working demo
// without any build step: the client bundle as a JavaScript module, and
// pages whose module imports all resolve.
func TestWebDemo(t *testing.T) {
	srv, err := gameserver.New(gameserver.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	h := srv.Handler()

	res, js := get(t, h, "/gameserver.js")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/gameserver.js: %s", res.Status)
	}
	// Browsers run module scripts only when served with a JavaScript type.
	if ct := res.Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("/gameserver.js: Content-Type %q", ct)
	}
	for _, want := range []string{"@gameserver/client", "export{", "joinOrCreate"} {
		if !strings.Contains(js, want) {
			t.Errorf("/gameserver.js does not contain %q", want)
		}
	}

	imports := regexp.MustCompile(`from "(/[^"]+)"`)
	for _, page := range []string{"/", "/arena.html", "/chat.html"} {
		res, html := get(t, h, page)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", page, res.Status)
		}
		if !strings.Contains(html, `<script type="module">`) {
			t.Errorf("%s: no module script", page)
		}
		found := imports.FindAllStringSubmatch(html, -1)
		if len(found) == 0 {
			t.Errorf("%s imports nothing", page)
		}
		for _, m := range found {
			if res, _ := get(t, h, m[1]); res.StatusCode != http.StatusOK {
				t.Errorf("%s imports %s: %s", page, m[1], res.Status)
			}
		}
	}
	_, index := get(t, h, "/")
	for _, link := range []string{`href="/arena.html"`, `href="/chat.html"`} {
		if !strings.Contains(index, link) {
			t.Errorf("index.html has no %s", link)
		}
	}
}
