// criclient is edgecri's grpc-go interoperability probe: kubelet and crictl
// talk to the runtime with grpc-go, so this program drives a running edgecri
// over its unix socket with the same library and checks the answers.
//
// It is built by test/go/build.sh (stubs generated at build time from
// src/cri/api.proto, GOPATH mode against Debian's /usr/share/gocode) and run
// by test/e2e/test_grpc_go.py. Every check prints one line; the program exits
// 0 when all of them behaved as expected and 1 otherwise, naming each failure
// on stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const callTimeout = 10 * time.Second

// protoCodec is grpc-go's "proto" codec on top of the protobuf APIv2 runtime.
//
// Debian 12 pairs grpc-go 1.33 (whose built-in codec goes through
// github.com/golang/protobuf/proto) with golang/protobuf 1.3.5, which predates
// APIv2 and panics on the messages protoc-gen-go 1.28 generates ("protobuf tag
// not enough fields in VersionResponse.state"). Registering this codec under
// the same name replaces the built-in one for every call; the wire format and
// the content-type (application/grpc) are unchanged. grpc-go >= 1.35 ships the
// same codec itself.
type protoCodec struct{}

func (protoCodec) Name() string { return "proto" }

func (protoCodec) Marshal(v interface{}) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("protoCodec: cannot marshal %T", v)
	}
	return proto.Marshal(m)
}

func (protoCodec) Unmarshal(data []byte, v interface{}) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("protoCodec: cannot unmarshal into %T", v)
	}
	return proto.Unmarshal(data, m)
}

func init() {
	// Runs after grpc/encoding/proto's own init (imported packages are
	// initialised first), so this registration wins.
	encoding.RegisterCodec(protoCodec{})
}

var failures []string

func fail(format string, args ...interface{}) {
	msg := fmt.Sprintf(format, args...)
	failures = append(failures, msg)
	fmt.Fprintf(os.Stderr, "FAIL: %s\n", msg)
}

// expectInvalid checks that a rejected request reaches grpc-go as a status
// with the right code and a message naming the missing field.
func expectInvalid(rpc, field string, err error) {
	st, _ := status.FromError(err)
	fmt.Printf("invalid rpc=%s code=%s message=%s\n", rpc, st.Code(), st.Message())
	if st.Code() != codes.InvalidArgument {
		fail("%s: expected code InvalidArgument, got %s (%v)", rpc, st.Code(), err)
	} else if !strings.Contains(st.Message(), field) {
		fail("%s: InvalidArgument message %q does not name %s", rpc, st.Message(), field)
	}
}

func checkVersion(rt runtimeapi.RuntimeServiceClient) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	resp, err := rt.Version(ctx, &runtimeapi.VersionRequest{Version: "v1"})
	if err != nil {
		fmt.Printf("version error code=%s message=%s\n", status.Code(err), err)
		fail("Version: %v", err)
		return
	}
	fmt.Printf("version runtime_name=%s runtime_version=%s runtime_api_version=%s\n",
		resp.RuntimeName, resp.RuntimeVersion, resp.RuntimeApiVersion)
	if resp.RuntimeName != "edgecri" {
		fail("Version: runtime_name %q, expected \"edgecri\"", resp.RuntimeName)
	}
	if resp.RuntimeApiVersion != "v1" {
		fail("Version: runtime_api_version %q, expected \"v1\"", resp.RuntimeApiVersion)
	}
}

func checkRunPodSandbox(rt runtimeapi.RuntimeServiceClient) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{})
	expectInvalid("RunPodSandbox", "config", err)
}

// ListImages on a fresh daemon: an empty list; ImageStatus of an image that
// is not there: no error and no image, as kubelet expects.
func checkListImages(img runtimeapi.ImageServiceClient) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	list, err := img.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		fail("ListImages: %v", err)
		return
	}
	fmt.Printf("images count=%d\n", len(list.Images))
	st, err := img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: "example.com/not/there:1"}})
	if err != nil {
		fail("ImageStatus: %v", err)
		return
	}
	fmt.Printf("imagestatus missing=%t\n", st.Image == nil)
	if st.Image != nil {
		fail("ImageStatus of a missing image returned %v", st.Image)
	}
}

func checkStatus(rt runtimeapi.RuntimeServiceClient) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	resp, err := rt.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		fmt.Printf("status error code=%s message=%s\n", status.Code(err), err)
		fail("Status: %v", err)
		return
	}
	conds := resp.GetStatus().GetConditions()
	fmt.Printf("status conditions=%d\n", len(conds))
	seen := map[string]bool{}
	for _, c := range conds {
		fmt.Printf("condition type=%s status=%t reason=%s\n", c.Type, c.Status, c.Reason)
		seen[c.Type] = true
	}
	if len(conds) != 2 {
		fail("Status: %d conditions, expected 2", len(conds))
	}
	for _, want := range []string{"RuntimeReady", "NetworkReady"} {
		if !seen[want] {
			fail("Status: no %s condition", want)
		}
	}
}

// recvUntilError reads the event stream until Recv fails and returns that error.
func recvUntilError(stream runtimeapi.RuntimeService_GetContainerEventsClient) error {
	for {
		if _, err := stream.Recv(); err != nil {
			return err
		}
	}
}

// checkEventsCancelled opens the (open-ended) event stream, lets it sit for
// 300 ms, then cancels the call from the client side.
func checkEventsCancelled(rt runtimeapi.RuntimeServiceClient) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	ctx, cancelStream := context.WithCancel(ctx)
	stream, err := rt.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		cancelStream()
		fmt.Printf("events cancelled code=%s message=%s\n", status.Code(err), err)
		fail("GetContainerEvents (cancel): opening the stream: %v", err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- recvUntilError(stream) }()
	select {
	case err = <-done:
		// The stream ended before we cancelled it: the server closed it.
		fmt.Printf("events cancelled code=%s message=%s\n", status.Code(err), err)
		fail("GetContainerEvents (cancel): stream ended before the client cancelled it: %v", err)
		cancelStream()
		return
	case <-time.After(300 * time.Millisecond):
	}
	cancelStream()
	select {
	case err = <-done:
	case <-time.After(callTimeout):
		fmt.Printf("events cancelled code=none message=Recv did not return\n")
		fail("GetContainerEvents (cancel): Recv did not return within %s of the cancellation", callTimeout)
		return
	}
	st, _ := status.FromError(err)
	fmt.Printf("events cancelled code=%s message=%s\n", st.Code(), st.Message())
	if st.Code() != codes.Canceled {
		fail("GetContainerEvents (cancel): expected code Canceled, got %s (%v)", st.Code(), err)
	}
}

// checkEventsDeadline opens the event stream with a 200 ms deadline, which
// the server learns through grpc-timeout and the client enforces as well.
func checkEventsDeadline(rt runtimeapi.RuntimeServiceClient) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	stream, err := rt.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err == nil {
		done := make(chan error, 1)
		go func() { done <- recvUntilError(stream) }()
		select {
		case err = <-done:
		case <-time.After(callTimeout):
			fmt.Printf("events deadline code=none message=Recv did not return\n")
			fail("GetContainerEvents (deadline): Recv did not return within %s", callTimeout)
			return
		}
	}
	st, _ := status.FromError(err)
	fmt.Printf("events deadline code=%s message=%s elapsed_ms=%d\n", st.Code(), st.Message(),
		time.Since(start).Milliseconds())
	if st.Code() != codes.DeadlineExceeded {
		fail("GetContainerEvents (deadline): expected code DeadlineExceeded, got %s (%v)", st.Code(), err)
	}
}

func main() {
	socket := flag.String("socket", "", "path of edgecri's unix socket")
	flag.Parse()
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "usage: criclient -socket PATH")
		os.Exit(2)
	}

	dialCtx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	conn, err := grpc.DialContext(dialCtx, "unix://"+*socket, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: dialing unix://%s: %v\n", *socket, err)
		os.Exit(1)
	}
	defer conn.Close()

	rt := runtimeapi.NewRuntimeServiceClient(conn)
	img := runtimeapi.NewImageServiceClient(conn)

	checkVersion(rt)
	checkRunPodSandbox(rt)
	checkListImages(img)
	checkStatus(rt)
	checkEventsCancelled(rt)
	checkEventsDeadline(rt)
	// The connection must still be usable after the two abandoned streams.
	checkVersion(rt)

	if len(failures) > 0 {
		fmt.Fprintf(os.Stderr, "criclient: %d check(s) failed:\n", len(failures))
		for _, f := range failures {
			fmt.Fprintf(os.Stderr, "  - %s\n", f)
		}
		os.Exit(1)
	}
	fmt.Println("ok")
}
