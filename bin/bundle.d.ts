/** The checkout's root. */
export declare const root: string;
/** dist/fetch-oracle.mjs, the bundle `npm run build` writes. */
export declare const bundlePath: string;
/** Whether the bundle exists and is at least as new as every file under src/. */
export declare function bundleIsFresh(): boolean;
