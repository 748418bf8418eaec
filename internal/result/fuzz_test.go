package result

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeNDJSON: whatever an agent (or an attacker with a token) sends,
// decoding never panics, and every batch it accepts re-encodes to results
// that decode and validate again.
func FuzzDecodeNDJSON(f *testing.F) {
	golden, _ := filepath.Glob("testdata/*.json")
	for _, g := range golden {
		b, _ := os.ReadFile(g)
		var compact bytes.Buffer
		json.Compact(&compact, b)
		f.Add(compact.Bytes())
		f.Add(append(append(compact.Bytes(), '\n'), compact.Bytes()...))
	}
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		rs, err := DecodeNDJSON(bytes.NewReader(body))
		if err != nil {
			if rs != nil {
				t.Fatalf("got %d results with error %v", len(rs), err)
			}
			return
		}
		for i := range rs {
			line, err := AppendNDJSON(nil, &rs[i])
			if err != nil {
				t.Fatal(err)
			}
			var back Result
			if err := Unmarshal(bytes.TrimSpace(line), &back); err != nil {
				t.Fatalf("accepted result does not decode again: %v\n%s", err, line)
			}
		}
	})
}
