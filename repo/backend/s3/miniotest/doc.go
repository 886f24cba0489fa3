// Package miniotest runs a real MinIO server for tests: one per test binary,
// on loopback ports, in a temporary directory, stopped when the tests end.
//
// Use it from TestMain so the server is stopped:
//
//	func TestMain(m *testing.M) { miniotest.Main(m) }
//
//	func TestX(t *testing.T) {
//		srv := miniotest.Start(t)
//		url := srv.URL(srv.NewBucket(t), "repo")
//		...
//	}
//
// The server binary is $CAIRN_MINIO if set, else
// ${CAIRN_TOOLS:-$HOME/.cache/cairn-tools}/minio, which is built with
// `go install` (several minutes) when missing, exactly as `scripts/deps.sh
// minio` does. Tests never skip for want of MinIO: they build it or fail.
//
// The server runs in its own process group with a parent-death signal, so
// even a test binary killed by a timeout leaves no minio behind; the next
// Start removes the data directory such a binary left.
package miniotest
