// Package inflate owns a raw DEFLATE (RFC 1951) decoder that hands out
// what it has decoded before it would wait for more input: the
// client-to-server half of IMAP COMPRESS=DEFLATE (RFC 4978), which imapd
// wires into a session (cmd_compress.go, compress_deflate.go).
//
// compress/flate's reader does not do that: it returns decoded data only
// at a stored block (what a zlib Z_SYNC_FLUSH ends with), when its window
// fills, or at the end of the stream. A client that flushes with
// Z_PARTIAL_FLUSH — mbsync does — ends its command with a Huffman block
// followed by the first bits of an empty one; compress/flate then keeps
// the command in its window and waits for input the client will not send
// before it gets an answer, and both sides wait for ever. (RFC 4978 §4
// does not prescribe a flush mode; zlib's inflate copes with any.)
//
// This decoder tries every step (a block header, a Huffman symbol, its
// extra bits) on the input already buffered, and when a step needs more,
// returns the output it has before reading from the connection. It keeps
// the 32 KB window DEFLATE requires and small decoding tables: about 35 KB
// per compressed session (the window and a 3.4 KB struct).
//
// Invariants: no input makes it panic or loop (FuzzInflate, which also
// checks its output against compress/flate's); it never reads from its
// source while it has decoded bytes to hand out.
package inflate

import (
	"bufio"
	"errors"
	"io"
)

// ErrCorrupt reports input that is not valid DEFLATE.
var ErrCorrupt = errors.New("imap: corrupt DEFLATE data from the client")

const (
	inflateWindowSize = 1 << 15
	inflateWindowMask = inflateWindowSize - 1
	inflateFastBits   = 9 // codes up to this long decode with one lookup
	inflateMaxBits    = 15
)

// inflateHuffman is a canonical Huffman code: count[n] codes of length n,
// symbols in code order, and a lookup table for short codes (index: the
// next inflateFastBits input bits; value: symbol<<4 | length, 0 if the
// code is longer).
type inflateHuffman struct {
	count  [inflateMaxBits + 1]uint16
	symbol [288]uint16
	fast   [1 << inflateFastBits]uint16
}

// build makes the code from the code lengths of symbols 0..len(lengths)-1.
// Incomplete codes are allowed (RFC 1951 permits one distance code);
// over-subscribed ones are not.
func (h *inflateHuffman) build(lengths []uint8) error {
	h.count = [inflateMaxBits + 1]uint16{}
	for _, l := range lengths {
		h.count[l]++
	}
	h.count[0] = 0
	left := 1
	for n := 1; n <= inflateMaxBits; n++ {
		left = left<<1 - int(h.count[n])
		if left < 0 {
			return ErrCorrupt
		}
	}
	var offs [inflateMaxBits + 2]uint16
	for n := 1; n <= inflateMaxBits; n++ {
		offs[n+1] = offs[n] + h.count[n]
	}
	for sym, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = uint16(sym)
			offs[l]++
		}
	}
	// Fill the fast table: canonical codes in order, each stored
	// bit-reversed (DEFLATE sends Huffman codes most significant bit
	// first into an LSB-first stream) at every index it prefixes.
	h.fast = [1 << inflateFastBits]uint16{}
	code, idx := 0, 0
	for n := 1; n <= inflateFastBits; n++ {
		for range int(h.count[n]) {
			rev := 0
			for b := range n {
				if code&(1<<b) != 0 {
					rev |= 1 << (n - 1 - b)
				}
			}
			for i := rev; i < len(h.fast); i += 1 << n {
				h.fast[i] = h.symbol[idx]<<4 | uint16(n)
			}
			code++
			idx++
		}
		code <<= 1
	}
	return nil
}

// The decoder's states between steps.
const (
	inflHeader    = iota // at a block header
	inflStored           // in a stored block, z.n bytes left
	inflSymbol           // in a Huffman block, at a literal/length symbol
	inflLenExtra         // read a length symbol (z.sym), its extra bits next
	inflDist             // have the length (z.n), the distance symbol next
	inflDistExtra        // have the length and distance symbol (z.sym)
	inflCopy             // copying z.n bytes from distance z.dist
	inflDone             // after the final block
)

// Reader decodes a raw DEFLATE stream read from src. It is an io.Reader
// for the session's bufio.Reader.
type Reader struct {
	src   *bufio.Reader
	bits  uint64 // input bits not yet used, LSB first
	nbits uint
	err   error

	state int
	final bool // the current block is the last
	n     int  // stored bytes left, or match length
	sym   int
	dist  int

	litCode, distCode inflateHuffman

	// win is allocated on its own: at exactly 32 KB it fills its size
	// class, where inside the struct it would round the whole up to 40 KB.
	win  []byte
	wpos uint64 // bytes decoded in all
	rpos uint64 // bytes handed out
}

// NewReader returns a Reader of the raw DEFLATE stream in src. It reads
// src only as far as src has buffered, except when it has nothing decoded
// to hand out.
func NewReader(src *bufio.Reader) *Reader {
	return &Reader{src: src, win: make([]byte, inflateWindowSize)}
}

// fill adds buffered input bytes to the bit buffer without blocking.
func (z *Reader) fill() {
	for z.nbits <= 56 && z.src.Buffered() > 0 {
		c, _ := z.src.ReadByte()
		z.bits |= uint64(c) << z.nbits
		z.nbits += 8
	}
}

// need makes n (<= 57) bits available, reading from the connection only if
// block is set; it reports whether they are.
func (z *Reader) need(n uint, block bool) bool {
	z.fill()
	for z.nbits < n {
		if !block {
			return false
		}
		c, err := z.src.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			z.err = err
			return false
		}
		z.bits |= uint64(c) << z.nbits
		z.nbits += 8
	}
	return true
}

func (z *Reader) take(n uint) int {
	v := int(z.bits & (1<<n - 1))
	z.bits >>= n
	z.nbits -= n
	return v
}

// decode reads one symbol of h from the available bits. ok is false when
// more input is needed; err reports an invalid code.
func (z *Reader) decode(h *inflateHuffman) (sym int, ok bool, err error) {
	if e := h.fast[z.bits&(1<<inflateFastBits-1)]; e != 0 {
		n := uint(e & 15)
		if n > z.nbits {
			return 0, false, nil
		}
		z.bits >>= n
		z.nbits -= n
		return int(e >> 4), true, nil
	}
	// A longer code: walk the canonical code bit by bit (as in zlib's
	// puff.c).
	code, first, index := 0, 0, 0
	b := z.bits
	for n := uint(1); n <= inflateMaxBits; n++ {
		if n > z.nbits {
			return 0, false, nil
		}
		code |= int(b & 1)
		b >>= 1
		count := int(h.count[n])
		if code-first < count {
			z.bits >>= n
			z.nbits -= n
			return int(h.symbol[index+code-first]), true, nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, false, ErrCorrupt
}

// symbol decodes one symbol, reading from the connection if block is set.
func (z *Reader) symbol(h *inflateHuffman, block bool) (int, bool) {
	for {
		z.fill()
		sym, ok, err := z.decode(h)
		if err != nil {
			z.err = err
			return 0, false
		}
		if ok {
			return sym, true
		}
		if !block || !z.need(z.nbits+8, true) {
			return 0, false
		}
	}
}

// Read hands out decoded data. It decodes as much as the buffered input
// and its window allow, and reads from the connection only when it has
// nothing to hand out.
func (z *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if z.wpos > z.rpos {
			return z.copyOut(p), nil
		}
		if z.err != nil {
			return 0, z.err
		}
		z.step(true)
	}
}

// copyOut copies decoded bytes not yet handed out into p.
func (z *Reader) copyOut(p []byte) int {
	avail := z.wpos - z.rpos
	start := int(z.rpos & inflateWindowMask)
	n := min(len(p), int(avail), inflateWindowSize-start)
	copy(p, z.win[start:start+n])
	z.rpos += uint64(n)
	return n
}

// step decodes until the window holds a full window of unread output, or
// a step needs input that is not buffered. With block set and nothing
// decoded yet, it waits for input instead; it then returns after the
// first progress.
func (z *Reader) step(block bool) {
	for z.err == nil {
		// Never overwrite what the reader has not taken yet.
		if z.wpos-z.rpos == inflateWindowSize {
			return
		}
		wait := block && z.wpos == z.rpos
		switch z.state {
		case inflDone:
			z.err = io.EOF
			return
		case inflHeader:
			if z.wpos > z.rpos {
				// A block boundary is where a client flushes: hand out
				// what the finished block held before looking further.
				return
			}
			z.header()
		case inflStored:
			if z.n == 0 {
				z.endBlock()
				continue
			}
			// Leftover whole bytes in the bit buffer come first.
			if z.nbits >= 8 {
				z.put(byte(z.take(8)))
				z.n--
				continue
			}
			if z.src.Buffered() == 0 && !wait {
				return
			}
			c, err := z.src.ReadByte()
			if err != nil {
				z.err = io.ErrUnexpectedEOF
				return
			}
			z.put(c)
			z.n--
		case inflSymbol:
			sym, ok := z.symbol(&z.litCode, wait)
			if !ok {
				return
			}
			switch {
			case sym < 256:
				z.put(byte(sym))
			case sym == 256:
				z.endBlock()
			case sym <= 285:
				z.sym = sym - 257
				z.state = inflLenExtra
			default:
				z.err = ErrCorrupt
			}
		case inflLenExtra:
			eb := inflateLenExtra[z.sym]
			if !z.need(eb, wait) {
				return
			}
			z.n = int(inflateLenBase[z.sym]) + z.take(eb)
			z.state = inflDist
		case inflDist:
			sym, ok := z.symbol(&z.distCode, wait)
			if !ok {
				return
			}
			if sym >= 30 {
				z.err = ErrCorrupt
				return
			}
			z.sym = sym
			z.state = inflDistExtra
		case inflDistExtra:
			eb := inflateDistExtra[z.sym]
			if !z.need(eb, wait) {
				return
			}
			z.dist = int(inflateDistBase[z.sym]) + z.take(eb)
			if uint64(z.dist) > z.wpos {
				z.err = ErrCorrupt // refers to before the stream began
				return
			}
			z.state = inflCopy
		case inflCopy:
			for z.n > 0 && z.wpos-z.rpos < inflateWindowSize {
				z.put(z.win[(z.wpos-uint64(z.dist))&inflateWindowMask])
				z.n--
			}
			if z.n == 0 {
				z.state = inflSymbol
			}
		}
	}
}

func (z *Reader) put(c byte) {
	z.win[z.wpos&inflateWindowMask] = c
	z.wpos++
}

func (z *Reader) endBlock() {
	if z.final {
		z.state = inflDone
	} else {
		z.state = inflHeader
	}
}

// header reads a block header (and a dynamic block's code tables),
// waiting for input as needed: it runs only when there is no output to
// hand out.
func (z *Reader) header() {
	if !z.need(3, true) {
		return
	}
	z.final = z.take(1) == 1
	switch z.take(2) {
	case 0: // stored: skip to a byte boundary, LEN and NLEN
		z.take(z.nbits % 8)
		if !z.need(32, true) {
			return
		}
		n, nn := z.take(16), z.take(16)
		if n != ^nn&0xffff {
			z.err = ErrCorrupt
			return
		}
		z.n = n
		z.state = inflStored
	case 1:
		z.litCode, z.distCode = inflateFixedLit, inflateFixedDist
		z.state = inflSymbol
	case 2:
		if z.dynamic() {
			z.state = inflSymbol
		}
	default:
		z.err = ErrCorrupt
	}
}

// inflateCLOrder is the order of the code length code lengths.
var inflateCLOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// dynamic reads the code tables of a dynamic Huffman block.
func (z *Reader) dynamic() bool {
	if !z.need(14, true) {
		return false
	}
	nlen := z.take(5) + 257
	ndist := z.take(5) + 1
	ncode := z.take(4) + 4
	if nlen > 286 || ndist > 30 {
		z.err = ErrCorrupt
		return false
	}
	var lengths [320]uint8
	for i := range ncode {
		if !z.need(3, true) {
			return false
		}
		lengths[inflateCLOrder[i]] = uint8(z.take(3))
	}
	var cl inflateHuffman
	if err := cl.build(lengths[:19]); err != nil {
		z.err = err
		return false
	}
	lengths = [320]uint8{}
	for i := 0; i < nlen+ndist; {
		sym, ok := z.symbol(&cl, true)
		if !ok {
			if z.err == nil {
				z.err = ErrCorrupt
			}
			return false
		}
		if sym < 16 {
			lengths[i] = uint8(sym)
			i++
			continue
		}
		var rep int
		var val uint8
		switch sym {
		case 16:
			if i == 0 {
				z.err = ErrCorrupt
				return false
			}
			if !z.need(2, true) {
				return false
			}
			rep, val = 3+z.take(2), lengths[i-1]
		case 17:
			if !z.need(3, true) {
				return false
			}
			rep = 3 + z.take(3)
		default:
			if !z.need(7, true) {
				return false
			}
			rep = 11 + z.take(7)
		}
		if i+rep > nlen+ndist {
			z.err = ErrCorrupt
			return false
		}
		for range rep {
			lengths[i] = val
			i++
		}
	}
	if lengths[256] == 0 { // no end-of-block code
		z.err = ErrCorrupt
		return false
	}
	if err := z.litCode.build(lengths[:nlen]); err != nil {
		z.err = err
		return false
	}
	if err := z.distCode.build(lengths[nlen : nlen+ndist]); err != nil {
		z.err = err
		return false
	}
	return true
}

var (
	inflateLenBase   = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	inflateLenExtra  = [29]uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	inflateDistBase  = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	inflateDistExtra = [30]uint{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

	inflateFixedLit, inflateFixedDist = func() (lit, dist inflateHuffman) {
		var l [288]uint8
		for i := range l {
			switch {
			case i < 144:
				l[i] = 8
			case i < 256:
				l[i] = 9
			case i < 280:
				l[i] = 7
			default:
				l[i] = 8
			}
		}
		lit.build(l[:])
		var d [30]uint8
		for i := range d {
			d[i] = 5
		}
		dist.build(d[:])
		return lit, dist
	}()
)
