// Command chdbd runs SQL on ClickHouse 26.x in-process (chDB) for tests: one
// JSON request a line on stdin, one JSON answer a line on stdout. Tests start
// it through chtest.ChDB rather than load libchdb.so themselves: the binding
// panics at init when the library is missing, which would take every other
// test of the package down with it, and ClickHouse's own threads and signal
// handlers stay out of the test process.
//
//	chdbd DIR     (CHDB_LIB_PATH names libchdb.so)
//	> {"sql": "SELECT 1", "format": "TabSeparated"}
//	< {"out": "1\n"}        or        < {"err": "Code: 62. DB::Exception: …"}
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/chdb-io/chdb-go/chdb"
)

type request struct {
	SQL    string `json:"sql"`
	Format string `json:"format"`
}

type answer struct {
	Out string `json:"out,omitempty"`
	Err string `json:"err,omitempty"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: chdbd DIR (with CHDB_LIB_PATH naming libchdb.so)")
		os.Exit(2)
	}
	s, err := chdb.NewSession(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "chdbd: cannot open a chDB session in %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	defer s.Close()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 256<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req request
		var a answer
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			a.Err = "chdbd: cannot decode request: " + err.Error()
		} else if req.Format == "" {
			req.Format = "TabSeparated"
		}
		if a.Err == "" {
			r, err := s.Query(req.SQL, req.Format)
			switch {
			case err != nil:
				a.Err = err.Error()
			case r != nil:
				a.Out = string(r.Buf())
				r.Free()
			}
		}
		if err := out.Encode(a); err != nil {
			os.Exit(1)
		}
	}
}
