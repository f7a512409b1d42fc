package s3store

import (
	"strings"
	"testing"
	"time"
)

func TestConfigFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, tc := range []struct {
		name string
		env  []string
		want Config
	}{
		{"host", []string{"S3_ENDPOINT", "s3.amazonaws.com", "S3_BUCKET", "nn-models"},
			Config{Endpoint: "s3.amazonaws.com", Bucket: "nn-models", UseSSL: true}},
		{"host:port, no SSL", []string{"S3_ENDPOINT", "minio:9000", "S3_BUCKET", "models", "S3_USE_SSL", "false", "S3_PREFIX", "nets/"},
			Config{Endpoint: "minio:9000", Bucket: "models", Prefix: "nets/"}},
		{"http URL", []string{"S3_ENDPOINT", "http://127.0.0.1:9000/", "S3_BUCKET", "models"},
			Config{Endpoint: "127.0.0.1:9000", Bucket: "models"}},
		{"https URL, agreeing S3_USE_SSL", []string{"S3_ENDPOINT", "https://r2.example.com", "S3_BUCKET", "models", "S3_USE_SSL", "1", "S3_REGION", "auto"},
			Config{Endpoint: "r2.example.com", Bucket: "models", UseSSL: true, Region: "auto"}},
		{"keys", []string{"S3_ENDPOINT", "[::1]:9000", "S3_BUCKET", "models", "AWS_ACCESS_KEY_ID", "AKID", "AWS_SECRET_ACCESS_KEY", "s3cr3t"},
			Config{Endpoint: "[::1]:9000", Bucket: "models", UseSSL: true, AccessKey: "AKID", SecretKey: "s3cr3t"}},
		{"timeout", []string{"S3_ENDPOINT", "minio:9000", "S3_BUCKET", "models", "S3_TIMEOUT", " 30s "},
			Config{Endpoint: "minio:9000", Bucket: "models", UseSSL: true, Timeout: 30 * time.Second}},
		{"shortest timeout", []string{"S3_ENDPOINT", "minio:9000", "S3_BUCKET", "models", "S3_TIMEOUT", "100ms"},
			Config{Endpoint: "minio:9000", Bucket: "models", UseSSL: true, Timeout: 100 * time.Millisecond}},
		{"longest timeout", []string{"S3_ENDPOINT", "minio:9000", "S3_BUCKET", "models", "S3_TIMEOUT", "10m"},
			Config{Endpoint: "minio:9000", Bucket: "models", UseSSL: true, Timeout: 10 * time.Minute}},
	} {
		cfg, ok, err := ConfigFromEnv(env(tc.env...))
		if err != nil || !ok || cfg != tc.want {
			t.Errorf("%s: %+v, %v, %v; want %+v", tc.name, cfg, ok, err, tc.want)
		}
	}

	// Neither S3_ENDPOINT nor S3_BUCKET: the directory store, whatever AWS
	// variables are set for other programs.
	if cfg, ok, err := ConfigFromEnv(env("AWS_ACCESS_KEY_ID", "AKID")); ok || err != nil || cfg != (Config{}) {
		t.Errorf("unset: %+v, %v, %v", cfg, ok, err)
	}

	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"S3_ENDPOINT", "minio:9000"}, "S3_ENDPOINT and S3_BUCKET must be set together, to keep models in S3: S3_BUCKET is empty"},
		{[]string{"S3_BUCKET", "models"}, "S3_ENDPOINT is empty"},
		{[]string{"S3_PREFIX", "nets/"}, "S3_PREFIX is set, but S3_ENDPOINT and S3_BUCKET are not"},
		{[]string{"S3_ENDPOINT", "minio:99999", "S3_BUCKET", "models"}, `S3_ENDPOINT "minio:99999" is not a valid host[:port] or URL: port "99999"`},
		{[]string{"S3_ENDPOINT", "minio:http", "S3_BUCKET", "models"}, `is not a valid host[:port] or URL`},
		{[]string{"S3_ENDPOINT", "mi nio", "S3_BUCKET", "models"}, `is not a valid host[:port] or URL`},
		{[]string{"S3_ENDPOINT", "::bad", "S3_BUCKET", "models"}, "an IPv6 address goes in brackets"},
		{[]string{"S3_ENDPOINT", "::1", "S3_BUCKET", "models"}, "an IPv6 address goes in brackets"},
		{[]string{"S3_ENDPOINT", "ftp://minio", "S3_BUCKET", "models"}, "the scheme must be http or https"},
		{[]string{"S3_ENDPOINT", "https://minio/models", "S3_BUCKET", "models"}, "the bucket goes in S3_BUCKET"},
		{[]string{"S3_ENDPOINT", "https://AKID:s3cr3t@minio", "S3_BUCKET", "models"}, "credentials belong in AWS_ACCESS_KEY_ID"},
		{[]string{"S3_ENDPOINT", "http://minio", "S3_BUCKET", "models", "S3_USE_SSL", "true"}, "S3_USE_SSL is true, but S3_ENDPOINT's scheme is http"},
		{[]string{"S3_ENDPOINT", "minio", "S3_BUCKET", "models", "S3_USE_SSL", "yes"}, `S3_USE_SSL is "yes", want true or false`},
		{[]string{"S3_ENDPOINT", "minio", "S3_BUCKET", "Models_"}, `S3_BUCKET "Models_" is not a valid bucket name`},
		{[]string{"S3_ENDPOINT", "minio", "S3_BUCKET", "models", "S3_PREFIX", "/nets/"}, `S3_PREFIX "/nets/" starts with '/'`},
		{[]string{"S3_ENDPOINT", "minio", "S3_BUCKET", "models", "AWS_SECRET_ACCESS_KEY", "s3cr3t"}, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together"},
		{[]string{"S3_TIMEOUT", "10s"}, "S3_TIMEOUT is set, but S3_ENDPOINT and S3_BUCKET are not"},
		{[]string{"S3_ENDPOINT", "minio", "S3_BUCKET", "models", "S3_TIMEOUT", "soon"}, `S3_TIMEOUT is "soon", want a duration from 100ms to 10m0s, such as 10s`},
		{[]string{"S3_ENDPOINT", "minio", "S3_BUCKET", "models", "S3_TIMEOUT", "10"}, `S3_TIMEOUT is "10", want a duration`},
		{[]string{"S3_ENDPOINT", "minio", "S3_BUCKET", "models", "S3_TIMEOUT", "50ms"}, `S3_TIMEOUT is "50ms", want a duration from 100ms to 10m0s`},
		{[]string{"S3_ENDPOINT", "minio", "S3_BUCKET", "models", "S3_TIMEOUT", "-1s"}, `S3_TIMEOUT is "-1s"`},
		{[]string{"S3_ENDPOINT", "minio", "S3_BUCKET", "models", "S3_TIMEOUT", "1h"}, `S3_TIMEOUT is "1h", want a duration from 100ms to 10m0s`},
	} {
		_, ok, err := ConfigFromEnv(env(tc.env...))
		if ok || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, %v; want an error with %q", tc.env, ok, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%q: the error shows the secret: %v", tc.env, err)
		}
	}
}
