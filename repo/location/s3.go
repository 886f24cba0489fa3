package location

import (
	"context"
	"os"
	"time"

	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/s3"
)

// S3 is a bucket (and key prefix) of an S3-compatible store:
// s3://host[:port]/bucket/prefix over TLS, s3+http://… in plain HTTP (a
// MinIO on loopback). Without Options.Credentials the credentials come
// from $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY; the region from
// $AWS_DEFAULT_REGION, else the store is asked.
var S3 = &Scheme{
	Name:     "s3",
	Prefixes: []string{"s3://", "s3+http://"},
	Key: func(loc string) string {
		if cfg, err := s3.ParseURL(loc); err == nil {
			return cfg.URL()
		}
		return loc
	},
	Open:      openS3,
	SecretEnv: []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"},
	Defaults: Defaults{
		Remote:        true,
		Settle:        3 * time.Second,
		Uploads:       4,
		Decorators:    []Decorator{Retry},
		CacheMetadata: true,
	},
}

func openS3(ctx context.Context, loc string, o Options) (backend.Backend, error) {
	cfg, err := s3.ParseURL(loc)
	if err != nil {
		return nil, err
	}
	cred := Credentials{os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")}
	if o.Credentials != nil {
		if cred, err = o.Credentials(); err != nil {
			return nil, err
		}
	}
	cfg.AccessKeyID, cfg.SecretAccessKey = cred.AccessKeyID, cred.SecretAccessKey
	cfg.Region = os.Getenv("AWS_DEFAULT_REGION")
	return s3.Open(ctx, cfg)
}

func init() { Register(S3) }
