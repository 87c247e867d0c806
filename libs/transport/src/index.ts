/**
 * @nestcd/transport: the peer transport between members (TCP, length-prefixed binary frames).
 * See frames.ts for the wire protocol, codec.ts for the message encoding, peer-transport.ts for the behaviour.
 */
export { CodecError, decodeMessage, encodedMessageSize, encodeMessage, encodeMessageInto, MESSAGE_TYPE_CODES } from './codec';
export { PROTOCOL_VERSION } from './frames';
export { fetchClusterInfo, PeerTransport, parsePeerUrl } from './peer-transport';
export type { PeerStats, PeerTransportOptions, TransportFaults, TransportStats } from './peer-transport';
