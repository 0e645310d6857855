// spdyclient drives edgecri's streaming server with kubectl's own SPDY
// library (github.com/moby/spdystream, from Debian's
// golang-github-docker-spdystream-dev): an interoperability check of our
// framing, header compression and stream semantics against the code kubelet
// and kubectl run.
//
//	spdyclient exec URL              stdin -> the stdin stream; prints JSON
//	                                 (https: the CA file is $SPDYCLIENT_CA)
//	spdyclient portforward URL PORT  stdin -> one forwarded connection; prints JSON
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"

	"github.com/moby/spdystream"
)

func dial(rawurl, protocol string) (*spdystream.Connection, string, error) {
	u, err := url.Parse(rawurl)
	if err != nil {
		return nil, "", err
	}
	var conn net.Conn
	if u.Scheme == "https" {
		// The CA to trust comes from $SPDYCLIENT_CA.
		pem, err := os.ReadFile(os.Getenv("SPDYCLIENT_CA"))
		if err != nil {
			return nil, "", err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		conn, err = tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pool, ServerName: u.Hostname()})
		if err != nil {
			return nil, "", err
		}
	} else {
		conn, err = net.Dial("tcp", u.Host)
		if err != nil {
			return nil, "", err
		}
	}
	req, _ := http.NewRequest("POST", rawurl, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	req.Header.Add("X-Stream-Protocol-Version", protocol)
	if err := req.Write(conn); err != nil {
		return nil, "", err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, "", fmt.Errorf("upgrade refused: %s", resp.Status)
	}
	if br.Buffered() > 0 {
		return nil, "", fmt.Errorf("unexpected bytes after the 101 response")
	}
	sc, err := spdystream.NewConnection(conn, false)
	if err != nil {
		return nil, "", err
	}
	go sc.Serve(spdystream.NoOpStreamHandler)
	return sc, resp.Header.Get("X-Stream-Protocol-Version"), nil
}

func open(c *spdystream.Connection, h http.Header) *spdystream.Stream {
	s, err := c.CreateStream(h, nil, false)
	if err != nil {
		fail(err)
	}
	if err := s.Wait(); err != nil {
		fail(err)
	}
	return s
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "spdyclient:", err)
	os.Exit(1)
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func main() {
	if len(os.Args) < 3 {
		fail(fmt.Errorf("usage: spdyclient exec|portforward URL [PORT]"))
	}
	out := map[string]string{}
	switch os.Args[1] {
	case "exec":
		c, proto, err := dial(os.Args[2], "v4.channel.k8s.io")
		if err != nil {
			fail(err)
		}
		out["protocol"] = proto
		errS := open(c, hdr("streamType", "error"))
		inS := open(c, hdr("streamType", "stdin"))
		outS := open(c, hdr("streamType", "stdout"))
		erS := open(c, hdr("streamType", "stderr"))
		go func() {
			io.Copy(inS, os.Stdin)
			inS.Close()
		}()
		var wg sync.WaitGroup
		var stdout, stderr, status []byte
		wg.Add(3)
		go func() { defer wg.Done(); stdout, _ = io.ReadAll(outS) }()
		go func() { defer wg.Done(); stderr, _ = io.ReadAll(erS) }()
		go func() { defer wg.Done(); status, _ = io.ReadAll(errS) }()
		wg.Wait()
		out["stdout"], out["stderr"], out["error"] = string(stdout), string(stderr), string(status)
		c.Close()
	case "portforward":
		c, proto, err := dial(os.Args[2], "portforward.k8s.io")
		if err != nil {
			fail(err)
		}
		out["protocol"] = proto
		errS := open(c, hdr("streamType", "error", "port", os.Args[3], "requestID", "0"))
		// kubectl closes its side of the error stream at once.
		errS.Close()
		dataS := open(c, hdr("streamType", "data", "port", os.Args[3], "requestID", "0"))
		go func() {
			io.Copy(dataS, os.Stdin)
			dataS.Close()
		}()
		body, _ := io.ReadAll(dataS)
		status, _ := io.ReadAll(errS)
		out["data"], out["error"] = string(body), string(status)
		c.Close()
	default:
		fail(fmt.Errorf("unknown mode %s", os.Args[1]))
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
