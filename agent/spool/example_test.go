package spool_test

import (
	"fmt"
	"log"
	"os"
	"time"

	"github.com/meridian-net/meridian/agent/spool"
	"github.com/meridian-net/meridian/internal/result"
)

// The shipper's loop: read the oldest results, send them, ack only after the
// collector's 2xx. A failed send just leaves them for the next Next.
func Example() {
	dir, err := os.MkdirTemp("", "spool-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := spool.Open(dir, spool.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	var batch []*result.Result
	for range 5 {
		r := result.New("ams-1", "home", result.KindTCP, "example.com:443", time.Now())
		r.OK = true
		batch = append(batch, r)
	}
	if err := s.Append(batch); err != nil { // written when it returns, fsynced within Options.SyncDelay
		log.Fatal(err)
	}

	for {
		b, err := s.Next(2)
		if err != nil || b.Len() == 0 {
			break
		}
		// gzip b.Data and POST it to /v1/results here; on a 2xx:
		fmt.Printf("sent %d results\n", b.Len())
		if err := s.Ack(b); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("pending:", s.Len())
	// Output:
	// sent 2 results
	// sent 2 results
	// sent 1 results
	// pending: 0
}
