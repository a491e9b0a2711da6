/**
 * The process metrics the exposition serves, as the Go tool's client library names them: the
 * names test pins this list, the process metrics test scrapes every one of them.
 *
 * @module
 */
export const PROCESS_METRIC_NAMES: readonly string[] = [
  "process_cpu_seconds_total",
  "process_open_fds",
  "process_max_fds",
  "process_virtual_memory_bytes",
  "process_virtual_memory_max_bytes",
  "process_resident_memory_bytes",
  "process_start_time_seconds",
  "process_network_receive_bytes_total",
  "process_network_transmit_bytes_total",
];
