// Live parts of a page: each element with data-sse="URL" is replaced by the HTML the server pushes there.
for (const element of document.querySelectorAll("[data-sse]")) {
  const source = new EventSource(element.dataset.sse);
  source.onmessage = (event) => { element.innerHTML = JSON.parse(event.data).html; };
}
