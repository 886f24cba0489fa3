package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/cairn-backup/cairn/repo/backend"
)

// This file holds the white-box tests; s3_test.go runs against MinIO.

func TestTranslate(t *testing.T) {
	resp := func(status int, code, msg string) error {
		return minio.ErrorResponse{StatusCode: status, Code: code, Message: msg, BucketName: "bkt", Key: "k"}
	}
	urlErr := func(err error) error {
		return &url.Error{Op: "Get", URL: "http://127.0.0.1:9/bkt/k", Err: err}
	}
	dial := func(errno syscall.Errno) error {
		return urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)})
	}
	read := func(errno syscall.Errno) error {
		return urlErr(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", errno)})
	}
	sentinels := []error{backend.ErrNotExist, backend.ErrExist, backend.ErrPermission, backend.ErrNoSpace, backend.ErrTransient}

	tests := []struct {
		name string
		err  error
		want error // the one sentinel the result wraps; nil for none
	}{
		{"NoSuchKey", resp(404, "NoSuchKey", "The specified key does not exist."), backend.ErrNotExist},
		{"NoSuchVersion", resp(404, "NoSuchVersion", "gone"), backend.ErrNotExist},
		{"bare 404", resp(404, "404 Not Found", "404 Not Found"), backend.ErrNotExist},
		{"NoSuchBucket", resp(404, "NoSuchBucket", "The specified bucket does not exist"), backend.ErrNotExist},
		{"wrapped NoSuchKey", fmt.Errorf("get: %w", resp(404, "NoSuchKey", "no key")), backend.ErrNotExist},
		{"AccessDenied", resp(403, "AccessDenied", "Access Denied."), backend.ErrPermission},
		{"InvalidAccessKeyId", resp(403, "InvalidAccessKeyId", "The Access Key Id you provided does not exist in our records."), backend.ErrPermission},
		{"SignatureDoesNotMatch", resp(403, "SignatureDoesNotMatch", "The request signature we calculated does not match."), backend.ErrPermission},
		{"bare 403", resp(403, "403 Forbidden", "Forbidden"), backend.ErrPermission},
		{"PreconditionFailed", resp(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"), backend.ErrExist},
		{"bare 412", resp(412, "412 Precondition Failed", "Precondition Failed"), backend.ErrExist},
		{"InternalError", resp(500, "InternalError", "We encountered an internal error, please try again."), backend.ErrTransient},
		{"SlowDown", resp(503, "SlowDown", "Please reduce your request rate."), backend.ErrTransient},
		{"RequestTimeout", resp(400, "RequestTimeout", "Your socket connection to the server was not read from or written to within the timeout period."), backend.ErrTransient},
		{"ServerNotInitialized", resp(503, "XMinioServerNotInitialized", "Server not initialized, please try again."), backend.ErrTransient},
		{"ConditionalRequestConflict", resp(409, "ConditionalRequestConflict", "A conflicting operation occurred."), backend.ErrTransient},
		{"BadDigest", resp(400, "BadDigest", "The Content-Md5 you specified did not match what we received."), backend.ErrTransient},
		{"bare 502", resp(502, "502 Bad Gateway", "<html>bad gateway</html>"), backend.ErrTransient},
		{"bare 503", resp(503, "503 Service Unavailable", "Service Unavailable"), backend.ErrTransient},
		{"429", resp(429, "429 Too Many Requests", "Too Many Requests"), backend.ErrTransient},
		{"StorageFull", resp(507, "XMinioStorageFull", "Storage backend has reached its minimum free drive threshold."), backend.ErrNoSpace},
		{"NotImplemented", resp(501, "NotImplemented", "A header you provided implies functionality that is not implemented"), nil},
		{"InvalidArgument", resp(400, "InvalidArgument", "Invalid argument"), nil},
		{"client-side invalid argument", minio.ErrorResponse{Code: "InvalidArgument", Message: "Invalid range specified"}, nil},
		{"connection refused", dial(syscall.ECONNREFUSED), backend.ErrTransient},
		{"connection reset", read(syscall.ECONNRESET), backend.ErrTransient},
		{"broken pipe", urlErr(&net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}), backend.ErrTransient},
		{"host unreachable", dial(syscall.EHOSTUNREACH), backend.ErrTransient},
		{"i/o timeout", urlErr(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}), backend.ErrTransient},
		{"unexpected EOF", fmt.Errorf("short body: %w", io.ErrUnexpectedEOF), backend.ErrTransient},
		{"server closed connection", urlErr(io.EOF), backend.ErrTransient},
		{"temporary DNS failure", urlErr(&net.DNSError{Err: "server misbehaving", Name: "s3.example", IsTemporary: true}), backend.ErrTransient},
		{"unknown host", urlErr(&net.DNSError{Err: "no such host", Name: "s3.example", IsNotFound: true}), nil},
		{"other", errors.New("something else"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translate(tt.err, "bkt")
			for _, s := range sentinels {
				if is := errors.Is(got, s); is != (s == tt.want) {
					t.Errorf("errors.Is(translate(%v), %v) = %v", tt.err, s, is)
				}
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("translate(%v) = %v, which does not wrap the original error", tt.err, got)
			}
			if !strings.Contains(got.Error(), tt.err.Error()) {
				t.Errorf("translate(%v) = %q, which lost the original text", tt.err, got)
			}
			var er minio.ErrorResponse
			if errors.As(tt.err, &er) && !errors.As(got, &er) {
				t.Errorf("errors.As(translate(%v), *minio.ErrorResponse) fails", tt.err)
			}
		})
	}

	t.Run("bucket named", func(t *testing.T) {
		got := translate(resp(404, "NoSuchBucket", "The specified bucket does not exist"), "my-bucket")
		if !strings.Contains(got.Error(), `bucket "my-bucket" does not exist`) {
			t.Errorf("NoSuchBucket translated to %q; want the bucket named", got)
		}
		if !strings.Contains(got.Error(), "NoSuchBucket, HTTP 404") {
			t.Errorf("NoSuchBucket translated to %q; want the code and status", got)
		}
	})

	t.Run("passed through", func(t *testing.T) {
		for _, err := range []error{
			nil,
			context.Canceled,
			context.DeadlineExceeded,
			urlErr(context.Canceled),
			fmt.Errorf("list: %w", context.DeadlineExceeded),
		} {
			if got := translate(err, "bkt"); got != err {
				t.Errorf("translate(%v) = %v, want it unchanged", err, got)
			}
		}
	})
}

func TestObjectName(t *testing.T) {
	const pack = "ab0123456789"
	tests := []struct {
		t    backend.FileType
		rel  string
		want string // "" for skipped
	}{
		{backend.PackFile, "ab/" + pack, pack},
		{backend.PackFile, "AB/AB", "AB"},
		{backend.PackFile, "zz/zz-not-hex", "zz-not-hex"},
		{backend.PackFile, "cd/" + pack, ""}, // wrong directory
		{backend.PackFile, pack, ""},         // not in a directory
		{backend.PackFile, "ab/", ""},        // directory marker
		{backend.PackFile, "ab/x/" + pack, ""},
		{backend.PackFile, "ab/ab/" + pack, ""},
		{backend.PackFile, "a/a", ""},
		{backend.SnapshotFile, "0123", "0123"},
		{backend.SnapshotFile, "sub/", ""},
		{backend.SnapshotFile, "sub/0123", ""},
		{backend.SnapshotFile, "", ""},
		{backend.KeyFile, "second-key", "second-key"},
	}
	for _, tt := range tests {
		got, ok := objectName(tt.t, tt.rel)
		if ok != (tt.want != "") || got != tt.want {
			t.Errorf("objectName(%s, %q) = %q, %v; want %q", tt.t, tt.rel, got, ok, tt.want)
		}
	}
}

func TestResponseRange(t *testing.T) {
	tests := []struct {
		cr          string
		length      int64
		first, size int64
		bad         bool
	}{
		{"", 1000, 0, 1000, false},
		{"", -1, 0, 0, true},
		{"bytes 10-29/1000", 20, 10, 1000, false},
		{"bytes 0-0/1", 1, 0, 1, false},
		{"bytes 990-999/1000", 10, 990, 1000, false},
		{"bytes 10-29/1000", 21, 0, 0, true}, // length disagrees
		{"bytes 10-1000/1000", 991, 0, 0, true},
		{"bytes 20-10/1000", -1, 0, 0, true},
		{"bytes */1000", -1, 0, 0, true},
		{"items 0-1/2", 2, 0, 0, true},
	}
	for _, tt := range tests {
		h := make(map[string][]string)
		if tt.cr != "" {
			h["Content-Range"] = []string{tt.cr}
		}
		first, size, err := responseRange(h, tt.length)
		if (err != nil) != tt.bad || !tt.bad && (first != tt.first || size != tt.size) {
			t.Errorf("responseRange(%q, %d) = %d, %d, %v", tt.cr, tt.length, first, size, err)
		}
	}
}
