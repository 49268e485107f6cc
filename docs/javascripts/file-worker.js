/* A Worker for pages opened from disk (file://), where Chromium refuses to start a web worker.
 *
 * The theme's search runs in a worker. On file:// this replaces `Worker` with an object that runs the
 * worker's script in a hidden iframe instead: a message posted to the object is dispatched in the iframe,
 * and what the script posts there comes back as the object's "message" event. The search index itself
 * comes from search/search_index.js (written by docs/hooks.py), a script, which file:// pages may load.
 * Over http(s) nothing changes.
 */
(function () {
  "use strict";
  if (location.protocol !== "file:") return;

  class FileWorker extends EventTarget {
    constructor(url) {
      super();
      this.onmessage = null;
      this.pending = [];
      this.frame = document.createElement("iframe");
      this.frame.hidden = true;
      document.body.appendChild(this.frame);
      const scope = this.frame.contentWindow;
      scope.postMessage = (data) => this.receive(data); // the worker's postMessage answers this object
      const script = scope.document.createElement("script");
      script.src = new URL(url, location.href).href;
      script.onload = () => {
        this.scope = scope;
        this.pending.splice(0).forEach((data) => this.postMessage(data));
      };
      scope.document.head.appendChild(script);
    }

    postMessage(data) {
      if (!this.scope) return void this.pending.push(data);
      this.scope.dispatchEvent(new this.scope.MessageEvent("message", { data }));
    }

    receive(data) {
      const event = new MessageEvent("message", { data });
      if (typeof this.onmessage === "function") this.onmessage(event);
      this.dispatchEvent(event);
    }

    terminate() {
      this.frame.remove();
    }
  }

  window.Worker = FileWorker;
})();
