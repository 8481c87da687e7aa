// fake-gcs-server for render-pod's gs:// integration test (render-pod/tests/fake_gcs.rs): the
// pinned upstream emulator (github.com/fsouza/fake-gcs-server/fakestorage, in memory, plain
// HTTP) plus the one request object_store sends that upstream lacks: a plain XML-API upload,
// `PUT /<bucket>/<object>` with the bytes as the body. Upstream routes that PUT to its
// JSON/signed-URL upload handler, which answers 400 "invalid uploadType" without `uploadType`
// or `X-Goog-Algorithm`, and its uploads answer without the ETag header object_store requires
// (fake-gcs-server issue 852 and object_store's own tests, which use a patched fork). Everything
// else (bucket creation, downloads, metadata) is upstream's handler, unchanged.
//
// Flags: -host (default 127.0.0.1), -port (required), -public-host (default host:port; the XML
// API is routed by this Host header).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

type readSeekNopCloser struct{ *bytes.Reader }

func (readSeekNopCloser) Close() error { return nil }

func main() {
	host := flag.String("host", "127.0.0.1", "address to bind to")
	port := flag.Uint("port", 0, "port to bind to (required)")
	publicHost := flag.String("public-host", "", "Host header of XML API requests (default host:port)")
	flag.Parse()
	if *port == 0 || *port > 65535 {
		log.Fatal("-port is required")
	}
	addr := net.JoinHostPort(*host, strconv.FormatUint(uint64(*port), 10))
	if *publicHost == "" {
		*publicHost = addr
	}
	server, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:      "http",
		Host:        *host,
		Port:        uint16(*port),
		PublicHost:  *publicHost,
		ExternalURL: "http://" + addr,
		NoListener:  true,
		Writer:      io.Discard,
	})
	if err != nil {
		log.Fatalf("fake-gcs-server: %v", err)
	}
	upstream := server.HTTPHandler()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bucket, object, ok := xmlPut(r, *publicHost); ok {
			putObject(server, w, r, bucket, object)
			return
		}
		upstream.ServeHTTP(w, r)
	})
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("fake-gcs-server: %v", err)
	}
	log.Fatal(http.Serve(listener, handler))
}

// xmlPut tells a plain XML-API upload (`PUT /<bucket>/<object>` to the public host, with no
// JSON-API, signed-URL or form-upload markers) and splits its path.
func xmlPut(r *http.Request, publicHost string) (bucket, object string, ok bool) {
	q := r.URL.Query()
	if r.Method != http.MethodPut || r.Host != publicHost || q.Has("uploadType") ||
		q.Has("X-Goog-Algorithm") || strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
		return "", "", false
	}
	bucket, object, ok = strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch bucket {
	case "", "upload", "storage", "download", "batch", "_internal":
		return "", "", false
	}
	return bucket, object, ok && object != ""
}

func putObject(server *fakestorage.Server, w http.ResponseWriter, r *http.Request, bucket, object string) {
	if _, err := server.Backend().GetBucket(bucket); err != nil {
		http.Error(w, "no such bucket: "+bucket, http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	err = server.CreateObjectStreaming(fakestorage.StreamingObject{
		ObjectAttrs: fakestorage.ObjectAttrs{
			BucketName:  bucket,
			Name:        object,
			ContentType: r.Header.Get("Content-Type"),
		},
		Content: readSeekNopCloser{bytes.NewReader(body)},
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	stored, err := server.GetObject(bucket, object)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("ETag", fmt.Sprintf("%q", stored.Etag))
	w.Header().Set("X-Goog-Generation", strconv.FormatInt(stored.Generation, 10))
	w.WriteHeader(http.StatusOK)
}
