package wire

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// gogoMessage is what gogo/protobuf's generated types implement. Marshalling
// through these methods skips protobuf-go's reflection wrapper, whose
// proto2 required-field check panics on gogo types with non-nullable
// repeated messages (mesos-go's CommandInfo with URIs, for one).
type gogoMessage interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
	Size() int
	Reset()
}

// codec marshals gogo messages with their own methods and leaves every other
// message (go-plugin's health, broker, stdio and controller services use
// protoc-gen-go types) to grpc's stock proto codec. It is installed per
// connection, on both sides, never globally.
type codec struct{ fallback encoding.CodecV2 }

func newCodec() codec { return codec{fallback: encoding.GetCodecV2("proto")} }

func (c codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(gogoMessage)
	if !ok {
		return c.fallback.Marshal(v)
	}
	b, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("wire: marshal %T: %w", v, err)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(gogoMessage)
	if !ok {
		return c.fallback.Unmarshal(data, v)
	}
	b := data.Materialize()
	m.Reset()
	if err := m.Unmarshal(b); err != nil {
		return fmt.Errorf("wire: unmarshal %T: %w", v, err)
	}
	return nil
}
