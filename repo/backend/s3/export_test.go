package s3

import (
	"context"
	"net/http"
)

// OpenWithTransport is Open with wrap around the HTTP transport, for tests
// that damage requests and responses on the wire.
func OpenWithTransport(ctx context.Context, cfg Config, wrap func(http.RoundTripper) http.RoundTripper) (*Backend, error) {
	return open(ctx, cfg, wrap)
}

// Key exposes the object key of a handle.
var Key = (*Backend).key
