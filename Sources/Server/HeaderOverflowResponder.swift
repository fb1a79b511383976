import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Answers a header block beyond the HTTP parser's hard cap (`ServerLimits.hardHeaderBytes`) with
/// 431 and an OpenAI-shaped error, then closes the connection. Without it, NIO's parser error
/// reaches Hummingbird, which writes a bare 400 with no body. Header blocks between
/// `maxHeaderBytes` and the hard cap are parsed and refused by `HeaderLimitMiddleware` (also 431).
/// One per connection, in the HTTP pipeline after the HTTP/1 codec.
final class HeaderOverflowResponder: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let hardLimit: Int
    /// A response head written and its end not yet: the error is then left to Hummingbird, which
    /// answers after that response instead of in the middle of it.
    private var responding = false
    private var answered = false

    init(hardLimit: Int) { self.hardLimit = hardLimit }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head: responding = true
        case .end: responding = false
        case .body: break
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let parserError = error as? HTTPParserError, parserError == .headerOverflow, !responding, !answered else {
            context.fireErrorCaught(error)
            return
        }
        answered = true
        let body = APIError(status: .requestHeaderFieldsTooLarge,
                            message: "Request headers exceed the server's hard limit of \(hardLimit) bytes",
                            type: "invalid_request_error", code: "request_header_fields_too_large").body.serialized()
        var head = HTTPResponse(status: .requestHeaderFieldsTooLarge)
        head.headerFields[.contentType] = "application/json"
        head.headerFields[.contentLength] = String(body.utf8.count)
        head.headerFields[.connection] = "close"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(ByteBuffer(string: body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}
