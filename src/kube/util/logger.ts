import winston from 'winston';

/**
 * Structured JSON logger. Messages follow controller-runtime style: start with a capital, say what
 * happened in the past tense, and name the object in key/value fields, e.g.
 * `log.info('Applied IDS VirtualMachine', { key: 'shop/web-1', name: 'web-1-ids' })`.
 */
export type Logger = winston.Logger;

export interface LoggerOptions {
  level?: string;
  /** Where lines go; defaults to stderr so stdout stays free for CLI output. */
  stream?: NodeJS.WritableStream;
  /** Fields put on every line, e.g. `{ component: 'hyperspector-operator' }`. */
  defaultMeta?: Record<string, unknown>;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const transport = options.stream
    ? new winston.transports.Stream({ stream: options.stream })
    : new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'] });
  return winston.createLogger({
    level: options.level ?? process.env.LOG_LEVEL ?? 'info',
    defaultMeta: options.defaultMeta,
    format: winston.format.combine(
      winston.format.timestamp(),
      winston.format.errors({ stack: true }),
      winston.format.json(),
    ),
    transports: [transport],
  });
}

/** A logger that drops everything; the default for library parts when the caller gives none. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}

/** Turns any thrown value into a log-friendly field (`err: message`). */
export function errorField(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
