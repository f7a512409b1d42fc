package live

import (
	"errors"
	"strings"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// errBinary is the decoder's answer to binary data: the library then closes
// the client's connection.
var errBinary = errors.New("binary packets are not accepted")

// textOnlyParser is the default Socket.IO parser, except that its decoders
// refuse binary packets: BINARY_EVENT and BINARY_ACK headers ("5…", "6…")
// and the binary attachments that would follow them. Clients of the
// contract send none, and the default decoder would hold up to 10
// attachments of up to MaxPayload bytes per client for as long as the
// client keeps the session.
type textOnlyParser struct{}

func (textOnlyParser) NewEncoder() parser.Encoder { return parser.NewEncoder() }
func (textOnlyParser) NewDecoder() parser.Decoder {
	return textOnlyDecoder{parser.NewDecoder()}
}

type textOnlyDecoder struct{ parser.Decoder }

// Add passes text packets other than binary headers to the default decoder.
func (d textOnlyDecoder) Add(data any) error {
	if isBinary(data) {
		return errBinary
	}
	return d.Decoder.Add(data)
}

// isBinary reports whether data, the payload of an Engine.IO message, is a
// binary attachment or the header of a binary Socket.IO packet.
func isBinary(data any) bool {
	var first byte
	switch v := data.(type) {
	case *types.StringBuffer:
		if b := v.Bytes(); len(b) > 0 {
			first = b[0]
		}
	case string:
		if len(v) > 0 {
			first = v[0]
		}
	case *strings.Reader:
		if b, err := v.ReadByte(); err == nil {
			first = b
			_ = v.UnreadByte()
		}
	default: // an attachment (bytes), or something no transport produces
		return true
	}
	return first == '0'+byte(parser.BINARY_EVENT) || first == '0'+byte(parser.BINARY_ACK)
}
