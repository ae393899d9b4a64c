import { debuglog, format } from 'node:util';

/** Namespaced, printf-style logger; silent unless enabled (NODE_DEBUG=oracle or an explicit sink). */
export interface Logger {
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
  debug(message: string, ...args: unknown[]): void;
  child(area: string): Logger;
}

export type LogSink = (level: 'info' | 'warn' | 'error' | 'debug', namespace: string, line: string) => void;

export const NOOP_LOGGER: Logger = {
  info: () => {},
  warn: () => {},
  error: () => {},
  debug: () => {},
  child: () => NOOP_LOGGER,
};

/**
 * Creates a logger for `namespace` (`oracle:<area>`). With a sink every level but debug goes to it;
 * debug lines go through util.debuglog('oracle') so NODE_DEBUG=oracle shows them.
 */
export function createLogger(namespace = 'oracle', sink?: LogSink): Logger {
  const debugLine = debuglog('oracle');
  const emit = (level: 'info' | 'warn' | 'error' | 'debug', message: string, args: unknown[]): void => {
    const line = format(message, ...args);
    if (level === 'debug' || sink === undefined) {
      debugLine('%s %s %s', level, namespace, line);
      if (level === 'debug') return;
    }
    sink?.(level, namespace, line);
  };
  return {
    info: (m, ...a) => emit('info', m, a),
    warn: (m, ...a) => emit('warn', m, a),
    error: (m, ...a) => emit('error', m, a),
    debug: (m, ...a) => emit('debug', m, a),
    child: (area) => createLogger(`${namespace}:${area}`, sink),
  };
}
