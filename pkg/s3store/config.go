package s3store

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Config says where the models are kept: in Bucket at Endpoint, each under
// the key <Prefix><id>.npz.
type Config struct {
	// Endpoint is the server's host[:port], without a scheme: s3.amazonaws.com,
	// minio.internal:9000.
	Endpoint string
	Bucket   string
	// Prefix starts every key: "models/" keeps the models in a "folder".
	Prefix string
	// UseSSL selects HTTPS.
	UseSSL bool
	// AccessKey and SecretKey sign requests; both empty means anonymous
	// requests.
	AccessKey, SecretKey string
	// Region is the bucket's region; empty, the client asks the server
	// (some S3-compatible servers want it set, e.g. to "auto").
	Region string
	// Timeout is how long S3 may keep a request waiting, for an answer or
	// for the next bytes of a body (see Deadlines in watch.go); 0:
	// DefaultTimeout.
	Timeout time.Duration
}

// ConfigFromEnv reads the configuration from the environment through getenv
// (os.Getenv):
//
//	S3_ENDPOINT            host[:port], or a URL http(s)://host[:port]
//	S3_BUCKET              the bucket, which must exist
//	S3_PREFIX              the keys' prefix (optional)
//	S3_USE_SSL             true or false; default: the URL's scheme, else true
//	S3_REGION              the bucket's region (optional)
//	S3_TIMEOUT             how long S3 may keep a request waiting, for an
//	                       answer or for the next bytes of a body: a Go
//	                       duration from 100ms to 10m; default 10s
//	AWS_ACCESS_KEY_ID      } both or neither: neither means anonymous
//	AWS_SECRET_ACCESS_KEY  }
//
// It returns false, and no error, when neither S3_ENDPOINT nor S3_BUCKET is
// set: models are then kept on disk. Its errors name the variable at fault
// and never show the secret key.
func ConfigFromEnv(getenv func(string) string) (Config, bool, error) {
	endpoint, bucket := strings.TrimSpace(getenv("S3_ENDPOINT")), strings.TrimSpace(getenv("S3_BUCKET"))
	if endpoint == "" && bucket == "" {
		for _, v := range []string{"S3_PREFIX", "S3_USE_SSL", "S3_REGION", "S3_TIMEOUT"} {
			if getenv(v) != "" {
				return Config{}, false, fmt.Errorf("%s is set, but S3_ENDPOINT and S3_BUCKET are not: set both to keep models in S3, or unset %s", v, v)
			}
		}
		return Config{}, false, nil
	}
	if endpoint == "" || bucket == "" {
		missing := "S3_ENDPOINT"
		if bucket == "" {
			missing = "S3_BUCKET"
		}
		return Config{}, false, fmt.Errorf("S3_ENDPOINT and S3_BUCKET must be set together, to keep models in S3: %s is empty", missing)
	}
	cfg := Config{Bucket: bucket, Prefix: getenv("S3_PREFIX"), Region: getenv("S3_REGION"),
		AccessKey: getenv("AWS_ACCESS_KEY_ID"), SecretKey: getenv("AWS_SECRET_ACCESS_KEY")}

	host, scheme, err := parseEndpoint(endpoint)
	if err != nil {
		return Config{}, false, err
	}
	cfg.Endpoint = host
	cfg.UseSSL = scheme != "http"
	if s := strings.TrimSpace(getenv("S3_USE_SSL")); s != "" {
		ssl, err := strconv.ParseBool(s)
		if err != nil {
			return Config{}, false, fmt.Errorf("S3_USE_SSL is %q, want true or false", s)
		}
		if scheme != "" && ssl != (scheme == "https") {
			return Config{}, false, fmt.Errorf("S3_USE_SSL is %s, but S3_ENDPOINT's scheme is %s", s, scheme)
		}
		cfg.UseSSL = ssl
	}
	if s := strings.TrimSpace(getenv("S3_TIMEOUT")); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < MinTimeout || d > MaxTimeout {
			return Config{}, false, fmt.Errorf("S3_TIMEOUT is %q, want a duration from %v to %v, such as %v", s, MinTimeout, MaxTimeout, DefaultTimeout)
		}
		cfg.Timeout = d
	}
	if err := cfg.check(); err != nil {
		return Config{}, false, err
	}
	return cfg, true, nil
}

// parseEndpoint accepts host[:port] or http(s)://host[:port][/], and
// returns host[:port] and the scheme, if one was given.
func parseEndpoint(s string) (host, scheme string, err error) {
	shown := s // what errors quote: never a password
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("S3_ENDPOINT %q is not a valid host[:port] or URL: %s", shown, why)
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			shown = "(not shown)"
			return bad("it does not parse as a URL")
		}
		shown = u.Redacted()
		if u.Scheme != "http" && u.Scheme != "https" {
			return bad("the scheme must be http or https")
		}
		if u.User != nil {
			return bad("credentials belong in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, not in the URL")
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return bad("it must have no path or query: the bucket goes in S3_BUCKET, the key prefix in S3_PREFIX")
		}
		s, scheme = u.Host, u.Scheme
	}
	if err := checkHostPort(s); err != nil {
		return bad(err.Error())
	}
	return s, scheme, nil
}

// checkHostPort checks host[:port]: a host name or IP address, and a port
// from 1 to 65535.
func checkHostPort(s string) error {
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
		host = h
	} else if strings.Contains(s, ":") {
		if net.ParseIP(s) != nil {
			return errors.New("an IPv6 address goes in brackets, with a port: [::1]:9000")
		}
		return errors.New("it is not host or host:port")
	}
	if host == "" {
		return errors.New("no host")
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("%q is not a host name", host)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not a host name", host)
			}
		}
	}
	return nil
}

// check validates a Config, from the environment or not.
func (c Config) check() error {
	if _, _, err := parseEndpoint(c.Endpoint); err != nil || strings.Contains(c.Endpoint, "://") {
		return fmt.Errorf("S3_ENDPOINT %q is not a valid host[:port]", c.Endpoint)
	}
	if err := s3utils.CheckValidBucketName(c.Bucket); err != nil {
		return fmt.Errorf("S3_BUCKET %q is not a valid bucket name: %v", c.Bucket, err)
	}
	if strings.HasPrefix(c.Prefix, "/") {
		return fmt.Errorf("S3_PREFIX %q starts with '/': keys do not", c.Prefix)
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return errors.New("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together, or both left empty for anonymous access")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("the S3 timeout is %v: it must not be negative", c.Timeout)
	}
	return nil
}
