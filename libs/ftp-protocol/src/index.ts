// Public API of @ftp/protocol: pure FTP parsing and formatting, no I/O.
export { CommandLineDecoder, type DecodedLine } from './commandLine';
export {
  COMMANDS,
  lookupCommand,
  parseCommand,
  type CommandSpec,
  type ParsedCommand,
} from './command';
export { formatReply } from './reply';
export {
  formatEpsvReply,
  formatPasvReply,
  normalizeAddress,
  parseEprtArgument,
  parseEpsvArgument,
  parsePortArgument,
  type EprtAddress,
  type EpsvArgument,
  type HostPort,
} from './addresses';
export {
  MLST_FACTS,
  formatFeatMlst,
  formatListLine,
  formatMdtm,
  formatMlsxLine,
  parseMdtm,
  selectMlstFacts,
  type ListEntry,
  type MlstFact,
} from './listing';
export { asciiFromNetwork, asciiToNetwork } from './ascii';
