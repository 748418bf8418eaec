// Command demo serves the small local page that `make run` points an agent
// at, with a fixed server delay so the latency table has something to show.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"
)

const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>Meridian demo target</title>
%s</head>
<body><h1>Meridian demo target</h1>
<p>An agent measures this page. Each response waits %v before its first byte.</p>
<img src="/logo.svg" width="120" height="120" alt="logo">
</body></html>
`

const logo = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4" fill="#2a7"/></svg>`

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "listen on `ADDR`")
	delay := flag.Duration("delay", 25*time.Millisecond, "server think time before the first byte")
	head := flag.String("head", "", "HTML to put in <head>, such as the rum.js tag from `meridian sites snippet`")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(*delay)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, page, *head, *delay)
	})
	mux.HandleFunc("GET /logo.svg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Timing-Allow-Origin", "*")
		fmt.Fprint(w, logo)
	})
	log.Printf("demo target on http://%s/", *listen)
	log.Fatal(http.ListenAndServe(*listen, mux))
}
