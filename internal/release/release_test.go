package release

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"strings"
	"testing"
)

// record encodes a release JSON the way Helm's storage drivers do: gzip, then base64.
func record(t *testing.T, js string, compress bool) []byte {
	t.Helper()
	raw := []byte(js)
	if compress {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		if _, err := zw.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		raw = b.Bytes()
	}
	return []byte(base64.StdEncoding.EncodeToString(raw))
}

const helm3Record = `{"name":"app","namespace":"team","version":3,"info":{"status":"deployed","description":"Upgrade complete"},` +
	`"chart":{"metadata":{"name":"example-app","version":"0.1.0","appVersion":"1.0.0"}},"config":{"tokenTtlSeconds":60}}`

func TestDecodeAndSummarize(t *testing.T) {
	for _, compress := range []bool{true, false} {
		rel, err := Decode(record(t, helm3Record, compress))
		if err != nil {
			t.Fatal(err)
		}
		got := Summarize(rel)
		want := Summary{Name: "app", Namespace: "team", Revision: 3, Status: "deployed", Chart: "example-app", ChartVersion: "0.1.0", AppVersion: "1.0.0", Description: "Upgrade complete"}
		if got != want {
			t.Fatalf("compress=%v: got %+v, want %+v", compress, got, want)
		}
		if rel.Config["tokenTtlSeconds"] != float64(60) {
			t.Fatalf("values not decoded: %v", rel.Config)
		}
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	for name, data := range map[string][]byte{
		"not base64": []byte("%%%"),
		"not json":   record(t, "not json", true),
		"bad gzip":   []byte(base64.StdEncoding.EncodeToString([]byte{0x1f, 0x8b, 0x08, 0, 1, 2})),
	} {
		if _, err := Decode(data); err == nil || !strings.Contains(err.Error(), "release record") {
			t.Errorf("%s: want a release record error, got %v", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(base64.StdEncoding.EncodeToString([]byte(helm3Record))))
	f.Add([]byte("H4sI"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Decode(data) // must never panic
	})
}
