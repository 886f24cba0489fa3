package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/minio/minio-go/v7"

	"github.com/cairn-backup/cairn/repo/backend"
)

// s3Error pairs an error from minio-go or the network with the sentinel it
// maps to; errors.Is finds both.
type s3Error struct {
	sentinel error
	err      error
	// noBucket is set when the bucket itself is missing, which Remove and
	// List must not take for a missing object.
	noBucket bool
	bucket   string
}

func (e *s3Error) Error() string {
	what := e.sentinel.Error()
	if e.noBucket {
		what = fmt.Sprintf("bucket %q does not exist", e.bucket)
	}
	return what + ": " + describe(e.err)
}

func (e *s3Error) Unwrap() []error { return []error{e.sentinel, e.err} }

// describe is err's text, with the S3 error code and HTTP status added
// when the store sent them.
func describe(err error) string {
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) || resp.StatusCode == 0 {
		return err.Error()
	}
	return fmt.Sprintf("%s (%s, HTTP %d)", err.Error(), resp.Code, resp.StatusCode)
}

// Error codes by the sentinel they map to. The S3 error code decides where
// the store sent one; the HTTP status otherwise.
var (
	codeNotExist = map[string]bool{
		minio.NoSuchKey: true, "NotFound": true, minio.NoSuchVersion: true,
	}
	codePermission = map[string]bool{
		minio.AccessDenied: true, minio.InvalidAccessKeyID: true, minio.SignatureDoesNotMatch: true,
		minio.AllAccessDisabled: true, "AccountProblem": true, "InvalidToken": true,
		"ExpiredToken": true, "XMinioAccessKeyDisabled": true,
	}
	codeExist = map[string]bool{
		minio.PreconditionFailed: true,
	}
	codeNoSpace = map[string]bool{
		"XMinioStorageFull": true, "XMinioAdminBucketQuotaExceeded": true,
	}
	codeTransient = map[string]bool{
		"SlowDown": true, "SlowDownRead": true, "SlowDownWrite": true,
		"RequestTimeout": true, minio.InternalError: true, "ServiceUnavailable": true,
		"Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true,
		"RequestThrottled": true, "XMinioServerNotInitialized": true,
		"XMinioReadQuorum": true, "XMinioWriteQuorum": true,
		// AWS answers 409 to the loser of two racing conditional PUTs;
		// tried again, it gets 412 (ErrExist) or succeeds.
		"ConditionalRequestConflict": true,
		// The body was damaged or cut short on its way to the store.
		minio.BadDigest: true, minio.IncompleteBody: true, minio.XAmzContentSHA256Mismatch: true,
	}
)

// translate is the one place that maps minio-go and network errors to the
// backend sentinels. bucket names the bucket in "no such bucket" errors.
// Context errors and errors without a sentinel are returned unchanged.
func translate(err error, bucket string) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	wrap := func(sentinel error) error { return &s3Error{sentinel: sentinel, err: err} }

	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch code, status := resp.Code, resp.StatusCode; {
		case code == minio.NoSuchBucket:
			return &s3Error{sentinel: backend.ErrNotExist, err: err, noBucket: true, bucket: bucket}
		case codeNotExist[code]:
			return wrap(backend.ErrNotExist)
		case codePermission[code]:
			return wrap(backend.ErrPermission)
		case codeExist[code]:
			return wrap(backend.ErrExist)
		case codeNoSpace[code]:
			return wrap(backend.ErrNoSpace)
		case codeTransient[code]:
			return wrap(backend.ErrTransient)
		case status == http.StatusNotFound:
			return wrap(backend.ErrNotExist)
		case status == http.StatusForbidden:
			return wrap(backend.ErrPermission)
		case status == http.StatusPreconditionFailed:
			return wrap(backend.ErrExist)
		case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests,
			status >= 500 && status != http.StatusNotImplemented:
			return wrap(backend.ErrTransient)
		}
		return err
	}

	var nerr net.Error
	switch {
	case errors.As(err, &nerr) && nerr.Timeout(),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ENETDOWN),
		// A connection closed mid-response.
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return wrap(backend.ErrTransient)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsTemporary {
		return wrap(backend.ErrTransient)
	}
	return err
}
