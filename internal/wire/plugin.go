package wire

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	modulev1 "github.com/execmod/execmod/proto/module/v1"
)

// ProtocolVersion is the plugin protocol version this build speaks. Hosts
// and modules negotiate the highest version both know (go-plugin's
// VersionedPlugins); a module built against another version fails to load
// with a message that says so.
const ProtocolVersion = 1

// pluginName is the one plugin in every module's plugin set.
const pluginName = "module"

// Handshake is the go-plugin handshake. The cookie is not security (AutoMTLS
// is); it lets a module run by hand explain that it needs a host.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "EXECMOD_MODULE_COOKIE",
	MagicCookieValue: "2f1b8c0e6d0a4c7b9e5f3a1d8c6b4e2f",
}

// grpcPlugin is the go-plugin glue on both sides: in the module it
// registers the Module service, in the host it builds the client stub.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	server modulev1.ModuleServer // module side only
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	modulev1.RegisterModuleServer(s, p.server)
	return nil
}

// GRPCClient is called in the host. done is cancelled when the module
// process exits.
func (p *grpcPlugin) GRPCClient(done context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return &stub{rpc: modulev1.NewModuleClient(cc), done: done, conn: cc}, nil
}

type stub struct {
	rpc  modulev1.ModuleClient
	done context.Context
	conn *grpc.ClientConn
}

func pluginSets(server modulev1.ModuleServer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {pluginName: &grpcPlugin{server: server}},
	}
}
