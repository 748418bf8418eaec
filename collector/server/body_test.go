package server

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadBody(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		length  int64
		want    string
		wantErr error
	}{
		{"declared length", "hello", 5, "hello", nil},
		{"unknown length (chunked)", "hello", -1, "hello", nil},
		{"declared beyond the limit: read as it comes (the caller's MaxBytesReader stops it)", "hello", MaxBeaconBytes + 1, "hello", nil},
		{"shorter than declared", "hel", 5, "", io.ErrUnexpectedEOF},
		{"empty", "", 0, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readBody(strings.NewReader(tc.body), tc.length)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
