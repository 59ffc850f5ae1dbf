package interop

import "crypto/tls"

// insecureTLS accepts any server certificate: the peers here use throwaway self-signed ones.
func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} }
