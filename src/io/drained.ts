/** Something written to with backpressure: a socket, an HTTP request or response. */
export interface DrainableStream {
  on(event: 'drain' | 'close', listener: () => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
}

/** Waits until `stream` can take more data (after `write()` returned false) or is closed. */
export function drained(stream: DrainableStream): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}
