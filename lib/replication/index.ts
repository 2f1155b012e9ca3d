export { deriveRoom, MAX_ROOM_NAME_LENGTH, MAX_ROOM_SECRET_LENGTH, type Room } from './room.ts'
export {
  RoomReplicator, DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_SILENT_TIMEOUT_MS, ROOM_PROTOCOL, MAX_WRITERS_PER_MESSAGE,
  type WriterInfo, type WriterDirectory, type RoomReplicatorOptions, type RoomConnection,
  type RoomStream, type RoomPeer, type Logger
} from './replicator.ts'
