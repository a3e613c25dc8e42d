// Starts the module's download and the analysis worker as soon as the page's HTML is parsed
// (index.html loads this script async, before main.js): they no longer wait for the page's
// module graph (main.js and its eleven imports, three levels deep), and the module's download
// no longer waits for the worker's own scripts either. main.js takes the messages over with
// listen().
import { startWorker } from './worker-client.js';

// An uncontrolled page fetches the module past the service worker, so it stores the module for
// the next offline visit itself; a controlled one's copy is stored by sw.js.
startWorker({
  storeModel: 'serviceWorker' in navigator && !navigator.serviceWorker.controller,
  simd: new URLSearchParams(location.search).get('simd'),
});
