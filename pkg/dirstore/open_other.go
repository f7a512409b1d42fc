//go:build !unix

package dirstore

import "os"

// openFlags opens a file for reading. Systems other than Unix have no FIFOs
// in the file system to block on.
const openFlags = os.O_RDONLY
