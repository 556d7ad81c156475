/**
 * The errors a durable storage adapter raises, one class per thing an operator or a driver must do
 * differently: a corrupt file (inspect it, restore from a peer), a full disk (free space, restart),
 * a failed disk write or sync (restart; the instance is finished), a directory another process
 * holds, a format this version does not know.
 *
 * @module
 */

/** The base of every storage error, so a driver can catch them as one kind. */
export class StorageError extends Error {
  /** Create a storage error with a message and, optionally, the error that caused it. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StorageError";
  }
}

/**
 * A record or file fails its checks somewhere other than a torn tail, so loading it could drop or
 * invent acknowledged state. Start-up stops; nothing is repaired.
 */
export class StorageCorruptionError extends StorageError {
  /** The damaged file's path. */
  readonly file: string;
  /** Byte offset in `file` where the damage starts (the first record that fails its checks). */
  readonly offset: number;

  /** Report damage in `file` at `offset`; `detail` says what is wrong there. */
  constructor(file: string, offset: number, detail: string) {
    super(`corrupt storage: ${file} at offset ${offset}: ${detail}`);
    this.name = "StorageCorruptionError";
    this.file = file;
    this.offset = offset;
  }
}

/**
 * A write or sync failed, so this storage instance refuses every later save with this same error.
 * After a failed fsync the kernel may have dropped the dirty pages and a retried fsync can report
 * success over lost data; only a restart, which reads back what is really on disk, is safe.
 */
export class StorageFailedError extends StorageError {
  /** Create the error; `cause` is the operating system's error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StorageFailedError";
  }
}

/**
 * The disk is full (ENOSPC, or EDQUOT for a quota). The save that hit it and every later one are
 * refused; what earlier saves made durable is intact. Free space and restart.
 */
export class StorageFullError extends StorageFailedError {
  /** Create the error; `cause` is the operating system's error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StorageFullError";
  }
}

/** Another live process holds the data directory's lock. */
export class StorageLockedError extends StorageError {
  /** Pid recorded in the lock file. */
  readonly pid: number;
  /** The lock file's path. */
  readonly lockFile: string;

  /** Report that process `pid` holds `lockFile`; `detail` says how that was decided. */
  constructor(lockFile: string, pid: number, detail: string) {
    super(`storage directory is locked by process ${pid} (${lockFile}): ${detail}`);
    this.name = "StorageLockedError";
    this.pid = pid;
    this.lockFile = lockFile;
  }
}

/** The directory was written in a format this version cannot read (or is not floe's at all). */
export class StorageFormatError extends StorageError {
  /** Create the error with a message naming the file and what was found. */
  constructor(message: string) {
    super(message);
    this.name = "StorageFormatError";
  }
}

/** The storage was closed; it accepts no more saves. */
export class StorageClosedError extends StorageError {
  /** Create the error with a message naming the storage. */
  constructor(message: string) {
    super(message);
    this.name = "StorageClosedError";
  }
}
